#!/usr/bin/env python3
"""Compares two `edgeid --json identify` outputs face by face (e.g. tract against ort-cuda).

Prints one line per image and the largest differences; exits 1 when an image has another
number of faces, or a face another identity, decision or reasons.
"""
import json
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(a_path, b_path):
    a, b = read(a_path), read(b_path)
    differ = 0
    worst = {"similarity": 0.0, "live": 0.0, "box_px": 0.0}
    faces = 0
    for ia, ib in zip(a, b, strict=True):
        fa, fb = ia["faces"], ib["faces"]
        same = len(fa) == len(fb)
        for x, y in zip(fa, fb):
            faces += 1
            for key in ("identity", "decision", "reasons"):
                if x[key] != y[key]:
                    same = False
            worst["similarity"] = max(worst["similarity"], abs(x["similarity"] - y["similarity"]))
            if x["live"] is not None and y["live"] is not None:
                worst["live"] = max(worst["live"], abs(x["live"] - y["live"]))
            worst["box_px"] = max(worst["box_px"], *(abs(p - q) for p, q in zip(x["box"], y["box"])))
        decisions = ", ".join(f"{f['identity'] or 'unknown'}:{f['decision']}" for f in fa)
        print(f"{ia['image']}: {len(fa)} vs {len(fb)} face(s) {'same' if same else 'DIFFERENT'} ({decisions})")
        differ += not same
    print(f"{faces} faces in {len(a)} images; {differ} image(s) with other decisions; largest "
          f"differences: similarity {worst['similarity']:.2e}, live {worst['live']:.2e}, "
          f"box {worst['box_px']:.2f} px")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
