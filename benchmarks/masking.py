"""Masking throughput (plugins/module_utils/masking.py, the one masker of host text).

Real log text: the demo stack's own logs plus lines in the formats log review knows (nginx, PostgreSQL,
Redis, Python logging), a few with planted secrets, about 8 MiB. Baseline, side by side: one
case-insensitive regex search for a secret word over the same text (the least any masker must do).
Pathological input: one line of a dash-joined secret word ("password-password-...") at 64 KiB and at
1 MiB: the time ratio of the two is about 16 when masking is linear (it was far above before issue 13).

Usage: python benchmarks/masking.py [ROUNDS]
"""

from __future__ import annotations

import importlib.util
import re
import sys

from _common import REPO, side_by_side, timed

MASKING = REPO / "plugins" / "module_utils" / "masking.py"
LINEAR_RATIO = 16.0

SAMPLE_LINES = [
    '2026/12/04 20:01:02 [error] 1234#1234: *5 open() "/srv/www/x.png" failed (2: No such file)',
    '2026-12-04 20:01:02.123 UTC [812] ERROR:  duplicate key value violates unique constraint "jobs_pkey"',
    "812:M 04 Dec 2026 20:01:02.123 # WARNING overcommit_memory is set to 0! Background save may fail",
    "2026-12-04 20:01:02,123 INFO coordinator.api GET /health 200 in 3 ms",
    "2026-12-04 20:01:02,124 WARNING wallet.daemon retrying with password=hunter2 for user=ops",
    "2026-12-04 20:01:02,125 ERROR client sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
    "2026-12-04 20:01:02,126 INFO connecting to postgresql://ops:S3cret@db:5432/aitbc",
]


def load_masker():
    spec = importlib.util.spec_from_file_location("masking_bench", MASKING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mask_secrets


def real_text() -> list[str]:
    lines: list[str] = []
    for log in sorted((REPO / ".state" / "demo" / "log").glob("*.log")):
        lines += log.read_text(errors="replace").splitlines()[-20000:]
    size = 0
    while size < 8 * 1024 * 1024:
        lines += SAMPLE_LINES
        size += sum(len(line) + 1 for line in SAMPLE_LINES)
    return lines


def main(rounds: int) -> int:
    mask = load_masker()
    lines = real_text()
    megabytes = sum(len(line) + 1 for line in lines) / 1024 / 1024
    word = re.compile(r"(?i)password|secret|token|bearer")

    def masked() -> None:
        for line in lines:
            mask(line)

    def searched() -> None:
        for line in lines:
            word.search(line)

    cand, base = side_by_side(masked, searched, rounds)
    print(f"real log text: {len(lines):,} lines, {megabytes:.1f} MiB")
    print(f"mask_secrets: {megabytes / cand:,.1f} MiB/s; one regex search: {megabytes / base:,.1f} MiB/s")
    print(f"ratio mask/search time: {cand / base:.2f}x")

    def line(n: int) -> str:
        return "password-" * (n // 9)

    small, large = line(64 * 1024), line(1024 * 1024)
    t_small = min(timed(lambda: mask(small)) for _ in range(rounds))
    t_large = min(timed(lambda: mask(large)) for _ in range(rounds))
    print(
        f"pathological line: 64 KiB {t_small * 1000:.1f} ms, 1 MiB {t_large * 1000:.1f} ms "
        f"({1 / t_large:,.1f} MiB/s)"
    )
    ratio = t_large / t_small
    verdict = "linear" if ratio < LINEAR_RATIO * 2 else "NOT linear"
    print(f"ratio 1 MiB / 64 KiB: {ratio:.1f}x (linear is about {LINEAR_RATIO:g}x) -> {verdict}")
    return 0 if ratio < LINEAR_RATIO * 2 else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
