#!/usr/bin/env python3
"""Generate a large workflow: N jobs of 5 steps, each job needing up to 3 random earlier jobs."""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
random.seed(42)
out = ["name: generated", "env: {GLOBAL: g}", "jobs:"]
for i in range(n):
    out.append(f"  job{i}:")
    if i:
        needs = sorted({f"job{random.randrange(i)}" for _ in range(random.randint(0, 3))})
        if needs:
            out.append(f"    needs: [{', '.join(needs)}]")
    out.append("    env: {LEVEL: job}")
    out.append("    steps:")
    for s in range(5):
        out.append(f"      - name: step {s}")
        out.append(f"        run: echo job {i} step {s} ${{{{ env.LEVEL }}}}")
        if s == 4:
            out.append("        timeout: 5m")
print("\n".join(out))
