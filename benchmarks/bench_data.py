"""Benchmark of the MIMOSeg builder: throughput and peak memory as the dataset grows.

Builds a synthetic nnU-Net v2 dataset (three labels, CT) of N cases for two values of N,
runs ``mimo.data.build.build`` with a process pool, and prints slices/s and the peak
resident memory of the main process plus its workers (psutil, sampled every 20 ms).
Memory should stay flat as N grows: it is bounded by the cases in flight, not by N.

    python benchmarks/bench_data.py [--sizes 8 32] [--workers 2] [--shape 96 96 40]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil

from mimo.data.build import BuildConfig, build


def make_dataset(root: Path, n: int, shape: tuple[int, int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    x, y, z = shape
    for i in range(n):
        lab = np.zeros(shape, np.uint8)
        o = int(rng.integers(0, 4))
        lab[x // 16 + o : x // 2, y // 5 : y * 3 // 5, z // 6 : z * 3 // 4] = 1  # liver
        lab[x * 2 // 3 : x * 5 // 6, y // 2 : y * 4 // 5, z // 4 : z * 2 // 3] = 2  # left kidney
        lab[x * 3 // 5 : x * 4 // 5, y // 8 : y // 3, z // 3 : z * 5 // 6] = 3  # spleen
        hu = rng.normal(-40, 25, shape).astype(np.float32) + 100 * (lab > 0)
        nib.save(nib.Nifti1Image(lab, affine), str(root / "labelsTr" / f"case_{i:04d}.nii.gz"))
        nib.save(
            nib.Nifti1Image(hu.astype(np.int16), affine), str(root / "imagesTr" / f"case_{i:04d}_0000.nii.gz")
        )
    ds = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1, "kidney_left": 2, "spleen": 3},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(ds))
    return root


class PeakRSS:
    """Samples the RSS of this process plus all its children in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._proc = psutil.Process()

    def _sample(self) -> int:
        total = self._proc.memory_info().rss
        for child in self._proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _generator():
    try:
        from mimo.data.perspectives import generate_records  # noqa: F401

        return None, "mimo.data.perspectives.generate_records"
    except ImportError:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
        import standin_generator

        return (
            standin_generator.generate,
            "tests/data/standin_generator.generate (perspectives not available)",
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 96, 40])
    args = ap.parse_args()
    gen, gen_name = _generator()
    print(f"generator: {gen_name}; workers: {args.workers}; volume {tuple(args.shape)}")
    print(f"{'cases':>6} {'slices':>7} {'records':>8} {'seconds':>8} {'slices/s':>9} {'peak RSS MiB':>13}")
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = make_dataset(Path(tmp) / "Dataset900_Bench", n, tuple(args.shape))
            out = Path(tmp) / "out"
            t0 = time.perf_counter()
            with PeakRSS() as mem:
                report = build(
                    [f"nnunet:{root}"],
                    out,
                    BuildConfig(),
                    workers=args.workers,
                    seed=0,
                    generator=gen,
                    progress=False,
                )
            dt = time.perf_counter() - t0
            slices = report["slices"]
            records = sum(s["records"] for s in report["splits"].values())
            rows.append((n, mem.peak))
            print(f"{n:>6} {slices:>7} {records:>8} {dt:>8.2f} {slices / dt:>9.1f} {mem.peak / 2**20:>13.0f}")
            print(f"        train mix: {report['splits']['train']['by_perspective']}")
    if len(rows) > 1:
        (n0, m0), (n1, m1) = rows[0], rows[-1]
        print(f"peak memory ratio {n1}/{n0} cases: {m1 / m0:.2f} (dataset ratio {n1 / n0:.1f})")


if __name__ == "__main__":
    main()
