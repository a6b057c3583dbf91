"""A writer process for the crash test: batch after batch of SERIES x SECONDS samples, every
sample of batch `i` carrying the value `i`, printing `committed i` after each commit."""

from __future__ import annotations

import sys

from edge.history.store import HistoryStore, Sample

SERIES, SECONDS = 50, 40


def main(path: str, first: int) -> None:
    store = HistoryStore(path)
    i = first
    while True:
        t0 = i * SECONDS
        batch = [
            Sample(f"dev/701/P{k}", t0 + s, float(i)) for s in range(SECONDS) for k in range(SERIES)
        ]
        store.write(batch)
        print(f"committed {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
