"""The named image set emoji: two npm packages (Google's and Twitter's images), every PNG
checked against genlab's manifests, through a folder mirror, a loopback HTTP mirror and the
official CDN's file-by-file layout on a loopback server; the split, the captions and the
pixels against emoji.json read here independently; captions of a user's folder from
metadata.jsonl. No test reaches the internet: the official URLs point at a closed local port.
"""

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dead_url
from PIL import Image

from genlab.data import catalogue as C
from genlab.data import emoji as E
from genlab.data import fetch as F
from genlab.data.images import load_images, validation_split
from genlab.errors import DataError

VERSION = "16.0.0"
PACKAGES = {v: f"emoji/emoji-datasource-{v}-{VERSION}.tgz" for v in ("google", "twitter")}
MANIFESTS = Path(F.__file__).resolve().parent / "manifests"
SURFER_TWITTER = "twitter/1f3c4-1f3fe-200d-2640-fe0f.png"  # woman surfing, medium-dark
TAMPERED = "google/1f3c4-1f3fe-200d-2640-fe0f.png"
PHRASES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}


def _manifest() -> dict[str, str]:
    """Both shipped manifests: {"google/NAME.png": sha256, ..., "emoji.json": sha256}."""
    out = {}
    for vendor in PACKAGES:
        text = (MANIFESTS / f"emoji-datasource-{vendor}-{VERSION}.sha256").read_text()
        out.update({m: d for d, m in (line.split("  ") for line in text.splitlines())})
    return out


def _files_under(folder: Path) -> list[str]:
    """Every file below folder, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _check_home(home: Path) -> None:
    """home holds exactly emoji.json and the 7,572 images, each with its published sha256."""
    manifest = _manifest()
    assert len(manifest) == 7573
    assert _files_under(home) == sorted(manifest)
    for member, digest in manifest.items():
        assert hashlib.sha256((home / member).read_bytes()).hexdigest() == digest, member


def _point_official(monkeypatch, base: str) -> None:
    """The CDN's base URL (files_url) of both packages moved under `base`."""
    s = C.NAMED_SETS["emoji"]
    archives = tuple(
        dataclasses.replace(a, files_url=a.files_url.replace("https://cdn.jsdelivr.net/", base))
        for a in C._EMOJI_ARCHIVES
    )
    monkeypatch.setitem(C.NAMED_SETS, "emoji", dataclasses.replace(s, archives=archives))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    _point_official(monkeypatch, dead_url())


@pytest.fixture(scope="module")
def packages(shared_data) -> Path:
    """The folder (mirror layout) that holds the two npm packages."""
    if not all((shared_data / p).is_file() for p in PACKAGES.values()):
        pytest.skip(f"the emoji packages are not in {shared_data / 'emoji'} (set GENLAB_TEST_DATA)")
    return shared_data


@pytest.fixture(scope="module")
def home(packages, module_cache) -> Path:
    """The set fetched once from the folder mirror into the module's cache (stderr kept)."""
    import contextlib

    err = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
        mp.setenv("GENLAB_CACHE", str(module_cache))
        mp.setenv("GENLAB_DATA_MIRROR", str(packages))
        _point_official(mp, dead_url())
        folder = F.fetch("emoji")
    _FETCH_LOG["stderr"] = err.getvalue()
    return folder


_FETCH_LOG: dict[str, str] = {}  # what the module's one fetch printed


@pytest.fixture(scope="module")
def table(home) -> list[dict]:
    return json.loads((home / "emoji.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sets(home, module_cache) -> dict:
    """The three splits at size 32, loaded once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLAB_CACHE", str(module_cache))
        mp.delenv("GENLAB_DATA_MIRROR", raising=False)
        return {
            s: load_images("emoji", s, size=32, progress=False) for s in ("train", "val", "test")
        }


def _expected(table: list[dict]) -> dict[tuple[str, str], tuple[str, str]]:
    """(vendor, unified) -> (split, caption), by the published rule, written out again here."""

    def h(text: str) -> int:
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)

    out = {}
    for e in table:
        base_h = h(e["unified"])
        name = e["name"].lower() or e["short_names"][0].replace("_", " ")
        for key, v in [("", e), *(e.get("skin_variations") or {}).items()]:
            for vendor in ("google", "twitter"):
                if not v[f"has_img_{vendor}"]:
                    continue
                both = e["has_img_google"] and e["has_img_twitter"]
                if vendor == "twitter" and both and base_h % 10 == 0:
                    split = "test a"
                elif key == "1F3FE" and base_h % 10 == 1:
                    split = "test b"
                elif h(f"{vendor}/{v['unified']}") % 25 == 0:
                    split = "val"
                else:
                    split = "train"
                tones = [PHRASES[c] for c in key.split("-")] if key else []
                out[(vendor, v["unified"])] = (split, ", ".join([name, *tones, f"{vendor} style"]))
    return out


# ---- fetch ---------------------------------------------------------------------------------


def test_the_shipped_manifests_are_the_packages_files(packages):
    """Each manifest lists exactly the package's 64px images (and google's emoji.json), with
    their sha256s; both packages ship the same emoji.json; the catalogue's sizes add up."""
    manifest = _manifest()
    s = C.NAMED_SETS["emoji"]
    assert s.kind == "images" and s.splits == ("train", "val", "test") and s.files == ()
    assert "Apache-2.0" in s.licence and "CC BY 4.0" in s.licence and "MIT" in s.licence
    jsons = []
    for vendor, path in PACKAGES.items():
        a = next(a for a in C._EMOJI_ARCHIVES if a.path == path)  # as shipped, not pointed
        assert a.files_url == f"https://cdn.jsdelivr.net/npm/emoji-datasource-{vendor}@{VERSION}/"
        sizes = 0
        with tarfile.open(packages / path) as tar:
            for m in tar:
                data = tar.extractfile(m).read() if m.isreg() else None
                if m.name == "package/emoji.json":
                    jsons.append(data)
                    if vendor != "google":
                        continue
                    name = "emoji.json"
                elif m.name.startswith(f"package/img/{vendor}/64/"):
                    name = f"{vendor}/{m.name.rsplit('/', 1)[1]}"
                else:
                    continue
                assert hashlib.sha256(data).hexdigest() == manifest.pop(name), name
                sizes += len(data)
        assert sizes == a.total_bytes
    assert manifest == {}  # nothing listed that the packages lack
    assert jsons[0] == jsons[1]
    assert F.locate("emoji") == ("download", None)
    for path in Path(F.__file__).resolve().parents[1].rglob("*.py"):
        assert "registry.npmjs" not in path.read_text(encoding="utf-8"), path


def test_folder_mirror_verifies_every_image_into_the_cache(
    home, packages, module_cache, monkeypatch
):
    assert home == module_cache / "emoji"
    _check_home(home)  # exactly the manifest's files: no sheets, no temporary file or folder
    assert _files_under(module_cache) == [f"emoji/{m}" for m in sorted(_manifest())]
    assert "verified 7,573 files" in _FETCH_LOG["stderr"]
    assert str(packages / PACKAGES["google"]) in _FETCH_LOG["stderr"]
    monkeypatch.setenv("GENLAB_CACHE", str(module_cache))
    assert F.locate("emoji") == ("cache", home)
    rows = {r["name"]: r for r in F.list_sets()}
    assert rows["emoji"]["found"] == "cache" and "captioned" in rows["emoji"]["description"]


def test_http_mirror_url_and_a_complete_cache(file_server, packages, monkeypatch):
    (file_server.root / "emoji").mkdir()
    for path in PACKAGES.values():
        (file_server.root / path).symlink_to(packages / path)
    monkeypatch.setenv("GENLAB_DATA_MIRROR", file_server.url.rstrip("/"))
    home = F.fetch("emoji", progress=False)
    assert sorted(file_server.requests) == sorted(PACKAGES.values())
    _check_home(home)
    assert F.fetch("emoji", progress=False) == home  # complete: no request at all
    assert len(file_server.requests) == 2


def _serve_cdn(root: Path, home: Path, altered: str | None = None) -> None:
    """The CDN's layout over the files in `home`: npm/PACKAGE@VERSION/{emoji.json,
    img/VENDOR/64/NAME.png}, as links (one file changed by a byte where `altered` says)."""
    for member in _manifest():
        vendor = member.split("/")[0] if "/" in member else "google"
        inside = "emoji.json" if member == "emoji.json" else f"img/{member.replace('/', '/64/')}"
        target = root / f"npm/emoji-datasource-{vendor}@{VERSION}/{inside}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if member == altered:
            data = bytearray((home / member).read_bytes())
            data[len(data) // 2] ^= 0x01
            target.write_bytes(bytes(data))
        else:
            target.symlink_to(home / member)


def test_the_official_cdn_file_by_file_through_a_loopback_server(
    file_server, home, monkeypatch, capsys
):
    _serve_cdn(file_server.root, home)
    _point_official(monkeypatch, file_server.url)
    got = F.fetch("emoji")  # no mirror: the official copy, 7,573 requests in parallel threads
    _check_home(got)
    assert len(file_server.requests) == len(set(file_server.requests)) == 7573
    assert f"npm/emoji-datasource-twitter@{VERSION}/img/twitter/64/1f600.png" in (
        file_server.requests
    )
    err = capsys.readouterr().err
    assert "fetching 3,787 files of emoji-datasource-google" in err and "verified 7,573" in err


def test_an_altered_file_on_the_cdn_is_refused(file_server, home, monkeypatch):
    _serve_cdn(file_server.root, home, altered="google/0023-fe0f-20e3.png")
    _point_official(monkeypatch, file_server.url)
    with pytest.raises(DataError) as e:
        F.fetch("emoji", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert "google/0023-fe0f-20e3.png does not match its published sha256" in msg
    assert len(file_server.requests) < 7573  # the rest were not asked for
    assert _files_under(F.cache_dir()) == []


@pytest.fixture(scope="module")
def tampered_mirror(packages, tmp_path_factory) -> Path:
    """A mirror folder whose google package has one PNG changed by a byte (same size; the
    package's sheets left out), beside the real twitter package."""
    root = tmp_path_factory.mktemp("tampered")
    (root / "emoji").mkdir()
    (root / PACKAGES["twitter"]).symlink_to(packages / PACKAGES["twitter"])
    with (
        tarfile.open(packages / PACKAGES["google"]) as src,
        tarfile.open(root / PACKAGES["google"], "w:gz", compresslevel=1) as out,
    ):
        for m in src:
            if "/sheets" in m.name:
                continue
            data = src.extractfile(m).read() if m.isreg() else None
            if m.name == f"package/img/{TAMPERED.replace('/', '/64/')}":
                changed = bytearray(data)
                changed[len(changed) // 2] ^= 0x01
                data = bytes(changed)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    return root


def test_an_altered_png_in_the_mirror_is_named_and_nothing_is_kept(tampered_mirror, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(tampered_mirror))
    with pytest.raises(DataError) as e:
        F.fetch("emoji", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot fetch emoji")
    assert f"{TAMPERED} does not match its published sha256" in msg
    assert str(tampered_mirror / PACKAGES["google"]) in msg
    assert "127.0.0.1" in msg  # the official copy was tried too (a closed port here)
    assert _files_under(F.cache_dir()) == [] and not (F.cache_dir() / "emoji").exists()


def test_a_failed_fetch_leaves_an_incomplete_cache_as_it_was(
    tampered_mirror, home, tmp_path, monkeypatch, capsys
):
    cache = tmp_path / "cache"
    shutil.copytree(home, cache / "emoji", copy_function=os.link)  # a copy by hard links
    (cache / "emoji" / SURFER_TWITTER).unlink()
    before = _files_under(cache), (cache / "emoji").stat().st_ino
    monkeypatch.setenv("GENLAB_CACHE", str(cache))
    monkeypatch.setenv("GENLAB_DATA_MIRROR", str(tampered_mirror))
    with pytest.raises(DataError, match=f"{TAMPERED} does not match"):
        F.fetch("emoji", progress=False)
    assert "is incomplete" in capsys.readouterr().err
    assert (_files_under(cache), (cache / "emoji").stat().st_ino) == before


# ---- the split, the captions, the pixels ---------------------------------------------------


def test_the_split_counts_follow_the_rule(home, table, sets):
    expected = _expected(table)
    assert len(expected) == 7572
    want = {k: {"google": 0, "twitter": 0, "all": 0} for k in ("train", "val", "test_a", "test_b")}
    for (vendor, _), (split, _) in expected.items():
        want[split.replace(" ", "_")][vendor] += 1
        want[split.replace(" ", "_")]["all"] += 1
    assert E.split_counts(home) == want
    assert want["test_a"]["google"] == 0 and want["test_b"]["google"] == want["test_b"]["twitter"]
    assert len(sets["train"].x) == want["train"]["all"]
    assert len(sets["val"].x) == want["val"]["all"]
    test = sets["test"]
    parts = test.attributes["part"]
    assert parts.count("a") == want["test_a"]["all"] and parts.count("b") == want["test_b"]["all"]
    for name, ds in sets.items():  # every image where the rule puts it, with the rule's caption
        for i, (style, unified) in enumerate(zip(ds.attributes["style"], ds.attributes["unified"])):
            split, caption = expected[(style, unified)]
            assert split == (f"test {parts[i]}" if name == "test" else name), (style, unified)
            assert ds.captions[i] == caption


def test_no_test_image_is_in_train_or_val(sets):
    def pairs(ds):
        return set(zip(ds.attributes["style"], ds.attributes["unified"]))

    train, val, test = pairs(sets["train"]), pairs(sets["val"]), pairs(sets["test"])
    assert not test & train and not test & val and not train & val
    assert len(train) + len(val) + len(test) == 7572
    # part a holds out a style: the same emoji's google drawings are trained on
    t, tr = sets["test"].attributes, sets["train"].attributes
    held_out = {e for e, p in zip(t["emoji"], t["part"]) if p == "a"}
    trained = {e for e, s in zip(tr["emoji"], tr["style"]) if s == "google"}
    assert held_out and held_out <= trained | set(sets["val"].attributes["emoji"])
    assert set(t["style"][i] for i, p in enumerate(t["part"]) if p == "a") == {"twitter"}
    assert set(t["tone"][i] for i, p in enumerate(t["part"]) if p == "b") == {"medium-dark"}


def test_captions_and_attributes_on_known_examples(sets):
    found = {}
    for name, ds in sets.items():
        for i, c in enumerate(ds.captions):
            found[c] = (name, {k: v[i] for k, v in ds.attributes.items()})
    split, attrs = found["woman surfing, medium-dark skin tone, twitter style"]
    assert attrs == {
        "style": "twitter",
        "tone": "medium-dark",
        "emoji": "1F3C4-200D-2640-FE0F",
        "unified": "1F3C4-1F3FE-200D-2640-FE0F",
        "part": "" if split != "test" else attrs["part"],
    }
    assert found["grinning face, google style"][1]["tone"] == "none"
    two = found["people holding hands, light skin tone, medium-dark skin tone, twitter style"][1]
    assert two["tone"] == "mixed" and two["unified"] == "1F9D1-1F3FB-200D-1F91D-200D-1F9D1-1F3FE"
    same = found["people holding hands, dark skin tone, dark skin tone, google style"][1]
    assert same["tone"] == "dark"  # one code twice: named twice, one tone
    for ds in sets.values():
        assert ds.y is None and ds.classes == [] and len(ds.captions) == len(ds.x)
        assert all(len(v) == len(ds.x) for v in ds.attributes.values())
        assert set(ds.attributes["tone"]) <= {"none", "mixed", *E.TONES.values()}


def test_size_32_is_rgb_uint8_on_white(sets, home):
    train = sets["train"]
    assert train.x.shape == (len(train.x), 3, 32, 32) and train.x.dtype == torch.uint8
    assert train.x.is_contiguous()
    corners = train.x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]  # (N, 3, 4)
    white = (corners == 255).all(1).all(1)
    assert white.float().mean() > 0.8  # most drawings leave the corners transparent
    i = train.captions.index("grinning face, google style")
    assert (corners[i] == 255).all()
    # the same image by hand: composited on white at 64, then each 2x2 block averaged
    rgba = np.asarray(Image.open(home / "google/1f600.png").convert("RGBA")).astype(np.float64)
    rgb = rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)
    box = rgb.reshape(32, 2, 32, 2, 3).mean((1, 3))
    assert np.abs(train.x[i].permute(1, 2, 0).numpy() - box).max() <= 1.5  # two roundings


def test_default_size_and_options(sets, module_cache, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(module_cache))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    val = load_images("emoji", "val", progress=False)
    assert val.x.shape[1:] == (3, 32, 32) and torch.equal(val.x, sets["val"].x)
    gray = load_images("emoji", "val", size=16, channels=1, progress=False)
    assert gray.x.shape == (len(val.x), 1, 16, 16) and gray.captions == val.captions
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert E.default_size() == 64


def test_validation_split_names_val_only_where_a_set_has_one():
    assert validation_split("emoji") == validation_split("shapes") == "val"
    for name in ("digits", "mnist", "fsdd", "tinyshakespeare", "./my_images"):
        assert validation_split(name) == "test"
    with pytest.raises(DataError, match="unknown split 'val' for digits; use 'train', 'test'"):
        load_images("digits", "val")
    with pytest.raises(DataError, match="use 'train', 'val', 'test'"):
        load_images("emoji", "dev")


def test_the_cli_says_every_image_was_verified_and_the_split(home, module_cache):
    env = {**os.environ, "GENLAB_CACHE": str(module_cache), "OMP_NUM_THREADS": "1"}
    env.pop("GENLAB_DATA_MIRROR", None)
    r = subprocess.run(
        [sys.executable, "-m", "genlab", "data", "fetch", "emoji"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "all 7,573 files verified" in r.stderr and f"ready in {home}" in r.stderr
    lines = r.stdout.splitlines()
    assert "7,572 images, every one verified by sha256" in lines[0]
    for name, row in E.split_counts(home).items():
        label = name.replace("_", " ")
        line = next(line for line in lines if line.startswith(label + " "))
        assert line[len(label) :].split()[:3] == [
            f"{row[v]:,}" for v in ("google", "twitter", "all")
        ]


# ---- captions of a user's folder (metadata.jsonl) ------------------------------------------


def _png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)
    return path


def _jsonl(path: Path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_metadata_jsonl_captions_follow_x(tmp_path):
    root = tmp_path / "shapes"
    for i in range(10):
        _png(root / f"img{i}.png", i * 20)
    _jsonl(
        root / "metadata.jsonl",
        [{"file_name": f"img{i}.png", "text": f"gray {i}"} for i in range(10)],
    )
    for split in ("train", "test"):
        ds = load_images(str(root), split, progress=False)
        assert len(ds.captions) == len(ds.x)
        for x, c in zip(ds.x, ds.captions):  # each caption beside its own image
            assert int(x[0, 0, 0]) == int(c.split()[1]) * 20
    plain = tmp_path / "plain"
    _png(plain / "a.png", 0)
    _png(plain / "b.png", 9)
    assert load_images(str(plain), "train", progress=False).captions is None


def test_metadata_jsonl_in_split_and_class_folders(tmp_path):
    root = tmp_path / "pets"
    _png(root / "train/cat/a.png", 10)
    _png(root / "train/dog/b.png", 20)
    _png(root / "test/cat/c.png", 30)
    rows = [
        {"file_name": "dog/b.png", "text": "a dog"},
        {"file_name": "cat/a.png", "text": "a cat"},
    ]
    _jsonl(root / "train/metadata.jsonl", rows)
    _jsonl(root / "test/metadata.jsonl", [{"file_name": "cat/c.png", "text": "another cat"}])
    train = load_images(str(root), "train", progress=False)
    assert train.captions == ["a cat", "a dog"] and train.y.tolist() == [0, 1]
    assert load_images(str(root), "test", progress=False).captions == ["another cat"]


@pytest.mark.parametrize(
    "rows, message",
    [
        (['{"file_name": "a.png", "text": "x"}', "{not json"], r"metadata.jsonl, line 2: not JSON"),
        ([{"file_name": "a.png"}], r"line 1: 'text' is missing"),
        ([{"file_name": "a.png", "text": 3}], r"line 1: 'text' is not a string \(int\)"),
        ([["a.png", "x"]], r"line 1: a list, not an object"),
        ([{"file_name": "zzz.png", "text": "x"}], r"line 1: file_name 'zzz.png' is not an image"),
        ([{"file_name": "../a.png", "text": "x"}], r"line 1: file_name '../a.png' must be a path"),
        (
            [{"file_name": "a.png", "text": "x"}, {"file_name": "./a.png", "text": "y"}],
            r"line 2: './a.png' has a caption already \(line 1 of",
        ),
        ([{"file_name": "a.png", "text": "x"}], r"1 of 2 images have no caption in metadata.jsonl"),
    ],
)
def test_a_broken_metadata_jsonl_is_one_line(tmp_path, rows, message):
    root = tmp_path / "set"
    _png(root / "a.png", 0)
    _png(root / "b.png", 255)
    _jsonl(root / "metadata.jsonl", rows)
    with pytest.raises(DataError, match=message) as e:
        load_images(str(root), "train", progress=False)
    assert "\n" not in str(e.value)
