"""The studio's judgements: stored and measured in genlab.metrics.human (the report reads
them too, and report and serve are siblings), re-exported here for the server.

    from genlab.serve import judgements
    rec = judgements.append(run_dir, {"kind": "pairwise", "runs": [a, b], "answer": "left"})
    judgements.summary([run_a, run_b])   # {"hype": {path: ...}, "bradley_terry": {...}}
"""

from genlab.metrics.human import FILE, append, bradley_terry, dedupe, hype, read, summary

__all__ = ["FILE", "append", "bradley_terry", "dedupe", "hype", "read", "summary"]
