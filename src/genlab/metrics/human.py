"""Human judgements: stored one a line in RUN/judgements.jsonl, and measured.

    from genlab.metrics import human
    human.append(run_dir, {"kind": "real_or_generated", "run": ref, "truth": "generated",
                           "answer": "real", "correct": False, "rater": sid})
    records = human.read(run_dir)
    human.hype(records, ref["path"])          # {"error_rate": 0.41, "ci": [0.35, 0.47], ...}
    human.bradley_terry(records)              # {"n": 300, "scores": [best first, ...]}
    human.summary([run_a, run_b])             # both, over several runs' files

Storage: each answer is one line, written by one os.write on an O_APPEND descriptor and
fsync'ed before append() returns, so a crash loses at most the line being written; a line
torn that way is skipped by read() and cut off by the next append(). One process (the
studio) writes; its threads take a lock per file. A pairwise judgement is stored in both
runs' files under one "id": every reader dedupes by "id".

Record shapes (RUNREF = {"id", "name", "path", "weights_sha256"}):
    {"kind": "real_or_generated", "data": "images"|"text", "run": RUNREF,
     "truth": "real"|"generated", "answer": "real"|"generated", "correct": bool, "rater": ...}
    {"kind": "pairwise", "data": ..., "runs": [RUNREF_left, RUNREF_right],
     "answer": "left"|"right"|"tie", "winner": path or None, "seed": int, "controls": {...}}

Statistics (numpy only):
- hype: HYPE-infinity (Zhou et al. 2019, "HYPE: A Benchmark for Human eYe Perceptual
  Evaluation of Generative Models"): the share of real and generated items that people
  misjudge. 50% means people cannot tell the run's output from real data. The paper
  shows each rater 50 real and 50 generated items; a server should likewise show both
  equally often, since the pooled rate weighs the two kinds by how often each was shown.
- bradley_terry: strengths from pairwise choices (Bradley and Terry 1952), fitted by the
  MM algorithm (Hunter 2004, "MM algorithms for generalized Bradley-Terry models").
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from genlab.errors import RunError
from genlab.fsutil import fsync_dir, read_jsonl

FILE = "judgements.jsonl"
Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = os.path.realpath(path)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _cut_torn_tail(path: Path) -> None:
    """If ``path`` does not end with a newline (a write torn by a crash), truncate it back
    to just after its last newline, so that every line in it is whole again."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        end = size
        while end > 0:  # read back in 64 KiB blocks to the last newline
            start = max(0, end - (1 << 16))
            block = os.pread(fd, end - start, start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)


def append(run_dir: Path, record: dict) -> dict:
    """Store one judgement in RUN_DIR/judgements.jsonl, durably, and return it with the
    "id" (uuid4 hex) and "time" (UTC, ISO 8601) it was given where it had none.

        rec = append(run_dir, {"kind": "pairwise", "runs": [a, b], "answer": "tie", ...})
    """
    path = Path(run_dir) / FILE
    record = dict(record)
    record.setdefault("id", uuid.uuid4().hex)
    record.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    # ASCII JSON holds no raw newline: the line is one record, whatever the strings say
    line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
    with _file_lock(path):
        try:
            created = not path.exists()
            if not created:
                _cut_torn_tail(path)
            fd = os.open(path, os.O_APPEND | os.O_CREAT | os.O_WRONLY, 0o644)
            try:
                written = os.write(fd, line)
                while written < len(line):  # only a full disk or a signal writes less
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(path.parent)
        except OSError as e:
            raise RunError(
                f"{path}: cannot store the judgement ({e.strerror}); check the disk and "
                "the folder's permissions"
            ) from None
    return record


def read(run_dir: Path) -> list[dict]:
    """Every judgement in RUN_DIR/judgements.jsonl, in order ([] without the file). A torn
    last line is skipped; a damaged line elsewhere is a RunError naming the line."""
    path = Path(run_dir) / FILE
    with _file_lock(path):
        return read_jsonl(path, warn=False)


def dedupe(records: list[dict]) -> list[dict]:
    """The records with each "id" once (the first kept); pairwise ones live in two files."""
    seen, out = set(), []
    for rec in records:
        key = rec.get("id")
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(rec)
    return out


def _bad_judgement(rec: dict, why: str) -> RunError:
    return RunError(f"judgement {rec.get('id', '?')}: {why}; fix or delete that line")


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927) of a share k/n; sane at 0, n and small n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at k = 0 (or n) the bound is exactly 0 (or 1); rounding would leave 1e-18
    return (0.0 if k == 0 else max(0.0, centre - half)), (
        1.0 if k == n else min(1.0, centre + half)
    )


def hype(records: list[dict], run_path: str) -> dict:
    """HYPE-infinity of the run at ``run_path``: the share of its real-or-generated
    judgements that were wrong, with a 95% Wilson score interval (the paper bootstraps
    over raters; Wilson needs no resampling and is close at these n).

        hype(records, "/runs/vae")["error_rate"]   # 0.5: people cannot tell; 0.0: always can
    """
    n = n_real = wrong_real = wrong_fake = 0
    for rec in dedupe(records):
        if rec.get("kind") != "real_or_generated" or (rec.get("run") or {}).get("path") != run_path:
            continue
        truth, answer = rec.get("truth"), rec.get("answer")
        if truth not in ("real", "generated") or answer not in ("real", "generated"):
            raise _bad_judgement(rec, "truth and answer must each be 'real' or 'generated'")
        n += 1
        n_real += truth == "real"
        wrong_real += truth == "real" and answer != truth
        wrong_fake += truth == "generated" and answer != truth
    n_fake = n - n_real
    return {
        "error_rate": (wrong_real + wrong_fake) / n if n else None,
        "ci": list(wilson(wrong_real + wrong_fake, n)) if n else None,
        "interval": "95% Wilson score",
        "n": n,
        "n_real": n_real,
        "n_generated": n_fake,
        "fake_error_rate": wrong_fake / n_fake if n_fake else None,  # generated called real
        "real_error_rate": wrong_real / n_real if n_real else None,  # real called generated
    }


def _bradley_terry_fit(
    a: np.ndarray, b: np.ndarray, s: np.ndarray, k: int, prior: float = 0.5
) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) of k players from games a[i] vs b[i] where a
    scored s[i] (1 win, 0.5 tie, 0 loss), by Hunter's MM update
        p_i <- W_i / sum_j N_ij / (p_i + p_j).
    ``prior``: each pair also plays one virtual tie (half a win each), which keeps every
    strength finite and the fit unique even for a run that never loses."""
    wins = np.full((k, k), prior)  # wins[i, j]: how much i beat j
    np.fill_diagonal(wins, 0.0)
    np.add.at(wins, (a, b), s)
    np.add.at(wins, (b, a), 1.0 - s)
    games = wins + wins.T  # (k, k) comparisons per pair
    w = wins.sum(1)  # (k,) each player's total score
    p = np.ones(k)
    for _ in range(10_000):
        new = w / (games / (p[:, None] + p[None, :])).sum(1)
        new /= np.exp(np.log(new).mean())  # strengths are defined up to a factor
        done = np.abs(np.log(new) - np.log(p)).max() < 1e-10
        p = new
        if done:
            break
    return np.log(p) - np.log(p).mean()


def bradley_terry(
    records: list[dict], paths: list[str] | None = None, n_boot: int = 200, seed: int = 0
) -> dict:
    """Bradley-Terry scores of the runs in the pairwise judgements (deduped by "id"; a tie
    is half a win to each side), restricted to games between ``paths`` when given. Score:
    log-strength, mean 0; elo = 1000 + 400*log10(strength / geometric mean). Intervals:
    95%, by bootstrap over judgements (``n_boot`` resamples, ``seed``); where every
    choice went the same way resampling cannot vary them and an interval is one point.
    Runs in no game are left out; no games at all gives {"n": 0, "scores": []}.

        bt = bradley_terry(records)
        bt["scores"][0]   # {"path", "name", "score", "ci", "elo", "elo_ci", "wins", ...}
    """
    allowed = set(paths) if paths is not None else None
    games, names = [], {}
    for rec in dedupe(records):
        if rec.get("kind") != "pairwise":
            continue
        runs = rec.get("runs")
        if not (isinstance(runs, list) and len(runs) == 2 and all("path" in r for r in runs)):
            raise _bad_judgement(
                rec, "a pairwise judgement needs 'runs': [left, right], each with a path"
            )
        left, right = runs[0]["path"], runs[1]["path"]
        if left == right or (allowed is not None and not {left, right} <= allowed):
            continue
        score = {"left": 1.0, "right": 0.0, "tie": 0.5}.get(rec.get("answer"))
        if score is None:
            raise _bad_judgement(rec, "answer must be 'left', 'right' or 'tie'")
        for r in runs:
            names.setdefault(r["path"], r.get("name") or Path(r["path"]).name)
        games.append((left, right, score))
    if not games:
        return {"n": 0, "scores": []}

    players = sorted(names)
    index = {p: i for i, p in enumerate(players)}
    a = np.array([index[g[0]] for g in games])
    b = np.array([index[g[1]] for g in games])
    s = np.array([g[2] for g in games])
    k, n = len(players), len(games)
    score = _bradley_terry_fit(a, b, s, k)
    rng = np.random.default_rng(seed)
    boot = np.array(
        [_bradley_terry_fit(a[i], b[i], s[i], k) for i in rng.integers(0, n, (n_boot, n))]
    )
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0) if n_boot else (score, score)

    def elo(x: float) -> float:
        return float(1000 + 400 * x / math.log(10))

    out = []
    for i, path in enumerate(players):
        mine = np.concatenate([s[a == i], 1.0 - s[b == i]])  # what i scored in each game
        out.append(
            {
                "path": path,
                "name": names[path],
                "score": float(score[i]),
                "ci": [float(lo[i]), float(hi[i])],
                "elo": elo(score[i]),
                "elo_ci": [elo(lo[i]), elo(hi[i])],
                "wins": int((mine == 1.0).sum()),
                "losses": int((mine == 0.0).sum()),
                "ties": int((mine == 0.5).sum()),
            }
        )
    out.sort(key=lambda r: -r["score"])
    return {"n": n, "scores": out}


def _with_resolved_paths(rec: dict) -> dict:
    """A copy of ``rec`` with its runs' paths resolved (symlinks, "..", relative)."""
    rec = dict(rec)
    if isinstance(rec.get("run"), dict) and "path" in rec["run"]:
        rec["run"] = {**rec["run"], "path": str(Path(rec["run"]["path"]).resolve())}
    if isinstance(rec.get("runs"), list):
        rec["runs"] = [
            {**r, "path": str(Path(r["path"]).resolve())}
            if isinstance(r, dict) and "path" in r
            else r
            for r in rec["runs"]
        ]
    return rec


def summary(run_dirs: list[Path]) -> dict:
    """HYPE-infinity of each run and the Bradley-Terry table of the games among them, from
    the runs' judgements.jsonl files; keys are the runs' resolved paths.

        s = summary([Path("runs/vae"), Path("runs/gan")])
        s["hype"][str(Path("runs/vae").resolve())]["error_rate"]; s["bradley_terry"]["scores"]
    """
    paths = [str(Path(d).resolve()) for d in run_dirs]
    records = dedupe([_with_resolved_paths(r) for d in run_dirs for r in read(Path(d))])
    return {
        "hype": {p: hype(records, p) for p in paths},
        "bradley_terry": bradley_terry(records, paths=paths),
    }
