#!/usr/bin/env python3
"""Histograms between two scrapes of one member's /metrics (store-bench --metrics-dir).

    scripts/metrics-diff.py BEFORE.prom AFTER.prom [REGEX]

BEFORE is the file saved after the previous line (or `-` for none); AFTER the file of the line
to look at. For every histogram whose name (with labels) matches REGEX, prints the
observations made between the two scrapes, their mean, and the bucket bounds that hold the
median and the 99th percentile.
"""
import re
import sys

LE = re.compile(r'le="([^"]+)"')


def load(path):
    values = {}
    if path == "-":
        return values
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            key, value = line.rsplit(" ", 1)
            try:
                values[key] = float(value)
            except ValueError:
                pass
    return values


def labels_without_le(key, name):
    inner = key[len(name) + len("_bucket"):].strip("{}")
    return ",".join(p for p in inner.split(",") if p and not p.startswith("le="))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    before, after = load(sys.argv[1]), load(sys.argv[2])
    pattern = re.compile(sys.argv[3] if len(sys.argv) > 3 else ".")
    for key in sorted(after):
        if "_count" not in key or not pattern.search(key):
            continue
        name, labels = key.split("_count", 1)
        count = after[key] - before.get(key, 0)
        if count <= 0:
            continue
        total = after.get(name + "_sum" + labels, 0) - before.get(name + "_sum" + labels, 0)
        wanted = labels.strip("{}")
        buckets = sorted(
            (float(LE.search(k).group(1)), after[k] - before.get(k, 0))
            for k in after
            if k.startswith(name + "_bucket") and labels_without_le(k, name) == wanted
        )

        def quantile(q):
            for bound, seen in buckets:
                if seen >= q * count:
                    return bound
            return float("inf")

        print(
            f"{name}{labels}: n={count:.0f} mean={1000 * total / count:.3f} ms "
            f"p50<={1000 * quantile(0.5):g} ms p99<={1000 * quantile(0.99):g} ms"
        )


if __name__ == "__main__":
    main()
