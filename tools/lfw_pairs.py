#!/usr/bin/env python3
"""Writes a pairs file in LFW's `pairs.txt` format (View 2: 10 folds of 300 matched and 300
mismatched pairs) over a folder in LFW's layout, for `edgeid eval --pairs`.

    python3 tools/lfw_pairs.py ../shared/data/lfw-dev var/lfw-dev-pairs.txt

LFW's own pairs.txt names people with 10 or more photos, whom lfw-dev leaves out, so it cannot be
run on lfw-dev; this draws pairs the same way from what is there: deterministic (seed 2026), each
person in one fold only (as View 2's folds are disjoint in people), matched pairs from people with
two or more photos, mismatched pairs between two people of the same fold.
"""
import random
import sys
from pathlib import Path


def main(folder, out, folds=10, per=300):
    people = {}
    for d in sorted(Path(folder).iterdir()):
        if d.is_dir():
            n = len(list(d.glob(f"{d.name}_*.jpg")))
            if n:
                people[d.name] = n
    rng = random.Random(2026)
    names = sorted(people)
    rng.shuffle(names)
    groups = [names[k::folds] for k in range(folds)]
    lines = [f"{folds}\t{per}"]
    for group in groups:
        multi = [p for p in group if people[p] >= 2]
        matched = set()
        while len(matched) < per:
            p = rng.choice(multi)
            i, j = sorted(rng.sample(range(1, people[p] + 1), 2))
            matched.add((p, i, j))
        mismatched = set()
        while len(mismatched) < per:
            a, b = sorted(rng.sample(group, 2))
            mismatched.add((a, rng.randint(1, people[a]), b, rng.randint(1, people[b])))
        lines += [f"{p}\t{i}\t{j}" for p, i, j in sorted(matched)]
        lines += [f"{a}\t{i}\t{b}\t{j}" for a, i, b, j in sorted(mismatched)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {folds} folds of {per} matched and {per} mismatched pairs over {len(people)} people")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
