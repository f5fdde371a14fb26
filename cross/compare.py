#!/usr/bin/env python3
"""Compares two `edgeid identify --json` outputs (one JSON object per line, one per photo):
the native build's and an emulated cross build's. Fails unless every photo has the same faces
(boxes within BOX_PX), the same identities and decisions, and every score within TOL.

    cross/compare.py native.jsonl emulated.jsonl
"""
import json
import sys

TOL = 1e-3  # scores: cosine similarity, detector score, live and head scores
BOX_PX = 0.5  # box corners and landmarks, in pixels


def num(x):
    return "-" if x is None else f"{x:.4f}"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(native_path, emulated_path):
    native, emulated = load(native_path), load(emulated_path)
    problems, worst_score, worst_px, faces = [], 0.0, 0.0, 0
    if len(native) != len(emulated):
        problems.append(f"{len(native)} photos natively, {len(emulated)} emulated")
    for a, b in zip(native, emulated):
        name = a["image"]
        if len(a["faces"]) != len(b["faces"]):
            problems.append(f"{name}: {len(a['faces'])} faces natively, {len(b['faces'])} emulated")
            continue
        for i, (fa, fb) in enumerate(zip(a["faces"], b["faces"])):
            faces += 1
            for key in ("identity", "nearest", "decision", "reasons"):
                if fa[key] != fb[key]:
                    problems.append(f"{name} face {i}: {key} {fa[key]!r} natively, {fb[key]!r} emulated")
            px = [abs(x - y) for x, y in zip(fa["box"], fb["box"])]
            px += [abs(x - y) for p, q in zip(fa["landmarks"], fb["landmarks"]) for x, y in zip(p, q)]
            worst_px = max(worst_px, *px)
            scores = [(k, fa[k], fb[k]) for k in ("score", "similarity", "live", "bona_fide") if fa.get(k) is not None]
            scores += [(h, x, y) for (h, x), (_, y) in zip(fa.get("pad") or [], fb.get("pad") or [])]
            print(f"{name} face {i}: {fb['identity'] or 'unknown'} ({fb['decision']}), "
                  f"similarity {num(fb['similarity'])} emulated / {num(fa['similarity'])} native, "
                  f"live {num(fb['live'])} / {num(fa['live'])}")
            for key, x, y in scores:
                if y is None or abs(x - y) > TOL:
                    problems.append(f"{name} face {i}: {key} {x} natively, {y} emulated")
                else:
                    worst_score = max(worst_score, abs(x - y))
    print(f"{len(native)} photos, {faces} faces: largest score difference {worst_score:.2e}, "
          f"largest box/landmark difference {worst_px:.3f} px")
    for p in problems:
        print("DIFFERENT:", p)
    return 1 if problems or worst_px > BOX_PX else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
