"""Shared plumbing of the benchmark scripts: the MKG-Y data with stand-in
features, one child process per measured variant (so that each peak memory
is its own), and the JSON they print."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence


def load_mkgy(root: str, features: Optional[Dict[str, int]] = None, name: str = 'MKG-Y'):
    """The real MKG-Y (or ``name``'s) triples under ``root/<name>/raw``; with
    ``features`` (``{modality: dim}``), random stand-in features present for
    every entity (they measure speed, not accuracy)."""
    import torch
    from native_pyg.datasets import WildKGC
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = WildKGC(root, name, log=False)[0]
    g = torch.Generator().manual_seed(0)
    n = data['entity'].num_nodes
    for m, d in (features or {}).items():
        data[m].x = torch.randn(n, d, generator=g)
        data[m].mask = torch.ones(n, dtype=torch.bool)
    return data


def peak_rss_bytes() -> int:
    """This process's own peak resident memory: ``VmHWM`` of
    ``/proc/self/status``, which a new program starts afresh (``ru_maxrss``
    survives fork and exec, so a child launched by a parent that generated a
    graph would report the parent's peak), else ``ru_maxrss``."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_mb() -> float:
    """This process's peak resident memory (data, model and all)."""
    return round(peak_rss_bytes() / 2 ** 20, 1)


def timed(fn: Callable[[], object], repeats: int) -> Dict[str, float]:
    """Median and minimum seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {'seconds_median': round(statistics.median(times), 3),
            'seconds_min': round(min(times), 3), 'repeats': repeats}


#: the shared-negative variants' overrides (a step reads ~3,000 distinct MKG-Y entities)
SHARED_NEGATIVES = ['training.shared_negatives=128', 'training.in_batch_negatives=32']


def _warmed_up(trainer, steps: int):
    """``steps`` batches of ``trainer`` drawn beforehand (sampling is not
    timed) after one warm-up step, and what waits for the device's work."""
    import itertools
    import torch
    batches = list(itertools.islice(trainer.steps, steps + 1))
    trainer.train_step(batches[0])  # warm-up
    sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
    return batches[1:], sync


def timed_steps(trainer, steps: int) -> Dict[str, float]:
    """:func:`timed` training steps of ``trainer`` on its first batches, drawn
    beforehand, after one warm-up step; CUDA work is waited for in each."""
    batches, sync = _warmed_up(trainer, steps)
    it = iter(batches)

    def step():
        trainer.train_step(next(it))
        sync()

    return timed(step, steps)


def _paired(names: List[str], rounds: int, run_one: Callable[[str, int], float],
            base: str = 'native') -> List[dict]:
    """``run_one(name, round)`` seconds of each variant, one of each per round
    (the order rotating), with each variant's median, minimum and, against
    ``base``: ``paired_ratio_to_native`` (the median over rounds of the
    ratio within a round, which a machine whose speed drifts between runs
    leaves intact) and ``ratio_of_totals_to_native`` (all its seconds over
    all of ``base``'s, what a run of that many steps or epochs would take)."""
    times: Dict[str, List[float]] = {n: [] for n in names}
    for i in range(rounds):
        for n in names[i % len(names):] + names[:i % len(names)]:
            times[n].append(run_one(n, i))
    out = []
    for n in names:
        row = {'variant': n, 'seconds_median': round(statistics.median(times[n]), 3),
               'seconds_min': round(min(times[n]), 3), 'repeats': rounds}
        if base in times:
            row['paired_ratio_to_native'] = round(statistics.median(
                a / b for a, b in zip(times[n], times[base])), 2)
            row['ratio_of_totals_to_native'] = round(sum(times[n]) / sum(times[base]), 2)
        out.append(row)
    return out


def interleaved_steps(trainers: Dict[str, object], rounds: int, base: str = 'native'
                      ) -> List[dict]:
    """Training steps of several trainers in one process, one step of each
    per round (the order rotating), after one warm-up step each (CUDA work
    waited for in each), compared by :func:`_paired`."""
    prepared = {n: _warmed_up(t, rounds) for n, t in trainers.items()}

    def step(n: str, i: int) -> float:
        batches, sync = prepared[n]
        start = time.perf_counter()
        trainers[n].train_step(batches[i])
        sync()
        return time.perf_counter() - start

    return _paired(list(trainers), rounds, step, base)


def interleaved_epochs(trainers: Dict[str, object], rounds: int, base: str = 'native'
                       ) -> List[dict]:
    """Whole training epochs (``train_epoch``: sampling, every step) of
    several trainers in one process, one epoch of each per round, after one
    warm-up step each, compared by :func:`_paired`."""
    syncs = {n: _warmed_up(t, 0)[1] for n, t in trainers.items()}

    def epoch(n: str, i: int) -> float:
        start = time.perf_counter()
        trainers[n].train_epoch()
        syncs[n]()
        return time.perf_counter() - start

    return _paired(list(trainers), rounds, epoch, base)


def step_results(script: str, args, load_data: Callable[[object], object],
                 build_trainer: Callable[[object, str, object], object]) -> List[dict]:
    """Each variant of ``args.variants`` timed by :func:`interleaved_steps`
    in this process (``args.interleaved``; ``load_data(args)`` once for all)
    or by :func:`compare`, each in its own process running ``script``."""
    if args.interleaved:  # one process, steps alternating: ratios robust to a drifting machine
        return interleaved_steps(trainers_in_process(args, load_data, build_trainer), args.steps)
    return compare(script, args.variants.split(','), sys.argv[1:], 'seconds_median')


def trainers_in_process(args, load_data: Callable[[object], object],
                        build_trainer: Callable[[object, str, object], object]
                        ) -> Dict[str, object]:
    """A trainer of each variant of ``args.variants`` in this process, all on
    one ``load_data(args)``."""
    data = load_data(args)
    return {v: build_trainer(args, v, data) for v in args.variants.split(',')}


def run_children(script: str, names: Sequence[str], argv: Sequence[str]) -> List[dict]:
    """Runs ``script --only NAME`` for each name in its own process and
    returns the JSON object each prints last."""
    out = []
    for name in names:
        cmd = [sys.executable, os.path.abspath(script), *argv, '--only', name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{name}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
        out.append({'variant': name, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return out


def run_child(args, child: Callable[[object], dict]) -> bool:
    """In a child process (``--only`` given): prints ``child(args)`` as JSON
    and returns ``True``."""
    if not getattr(args, 'only', None):
        return False
    print(json.dumps(child(args)))
    return True


def compare(script: str, variants: Sequence[str], argv: Sequence[str], key: str,
            base: str = 'native') -> List[dict]:
    """:func:`run_children`, each result with ``ratio_to_native``: its
    ``key`` over that of the ``base`` variant, measured in the same run."""
    results = run_children(script, variants, argv)
    ref = next((r[key] for r in results if r['variant'] == base and key in r), None)
    for r in results:
        if ref and key in r:
            r['ratio_to_native'] = round(r[key] / ref, 2)
    return results


def memory(device) -> Dict[str, float]:
    """Peak resident memory, and on CUDA the peak allocated GPU memory."""
    import torch
    out = {'peak_rss_mb': peak_rss_mb()}
    if device.type == 'cuda':
        out['peak_cuda_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def machine() -> Dict[str, object]:
    import platform
    import torch
    return {'torch': torch.__version__, 'threads': torch.get_num_threads(),
            'cpu_count': os.cpu_count(), 'platform': platform.platform(), **cpu_model()}


def cpu_model() -> Dict[str, object]:
    """The CPU's name and its widest vector and bf16 instructions (the
    same step runs at very different speeds on AVX2 and AVX-512 BF16 CPUs)."""
    try:
        with open('/proc/cpuinfo') as f:
            info = f.read()
    except OSError:
        return {}
    lines = info.splitlines()
    name = next((ln.split(':', 1)[1].strip() for ln in lines if ln.startswith('model name')),
                None)
    flags = set(next((ln.split(':', 1)[1].split() for ln in lines if ln.startswith('flags')),
                     []))
    vector = 'avx512' if 'avx512f' in flags else 'avx2' if 'avx2' in flags else 'other'
    return {'cpu': name, 'cpu_vector': vector, 'cpu_bf16': 'avx512_bf16' in flags}
