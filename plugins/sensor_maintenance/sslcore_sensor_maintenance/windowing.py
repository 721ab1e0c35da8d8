"""Sliding windows per machine, labels "failure within the horizon", and the split by machine.

A window is ``window`` consecutive grid steps of one machine, every ``stride`` steps; its end is
the prediction time. For the next failure ``f`` of its machine at or after the window's end:

- ``rul = f - end`` (``inf`` when no failure follows in the record); label 1 iff
  ``rul <= horizon``;
- windows that still contain missing values after the forward fill are dropped;
- windows that span a failure (``start <= f < end``), or start within ``exclude_after``
  time units after one (a broken machine still reporting until its repair), are dropped;
- ``event_id`` is the id of that next failure (``-1`` if none);
- ``group`` is the window's failure history (one per failure: all its windows, healthy and
  positive, from the previous failure on), or, when no failure follows, a machine-period of
  ``healthy_group`` time units. Label fractions sample whole groups, so "5% of the failures
  labeled" means 5% of the failure histories.

The split is by machine: a seeded permutation of the machines puts ``test_fraction`` of them in
the test set, the rest in training (the unlabeled pool and the labeled pool). No machine is on
both sides, so neither pretraining nor the backbone's normalizer ever sees a test machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslcore.sdk import DataError
from sslcore_sensor_maintenance.grid import MachineSeries


@dataclass
class Windows:
    """Windows of several machines: ``x`` is (N, C, T) float32; the rest are per window."""

    x: np.ndarray
    y: np.ndarray
    machine: np.ndarray  # str
    time: np.ndarray  # window end, in the data's time unit
    rul: np.ndarray  # time from the window end to the next failure; inf if none
    event_id: np.ndarray  # that failure's id; -1 if none
    group: np.ndarray  # failure history / healthy machine-period id
    time_to_record_end: np.ndarray  # how much later the machine's record ends

    def take(self, idx: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def meta(self, horizon: float) -> dict[str, np.ndarray]:
        return {"machine": self.machine, "time": self.time, "rul": self.rul,
                "event_id": self.event_id, "horizon": np.full(len(self.y), float(horizon)),
                "time_to_record_end": self.time_to_record_end}


def make_windows(series: list[MachineSeries], failures: dict[str, np.ndarray], *, window: int,
                 stride: int, horizon: float, healthy_group: float,
                 exclude_after: float = 0.0,
                 baseline_steps: int | None = None) -> tuple[Windows, dict[str, int]]:
    """Cut every machine's grid into windows (see the module docstring).

    ``failures[machine]`` holds its failure times, sorted. Returns the windows and counts for
    the data card (windows dropped for gaps or for spanning a failure).
    """
    parts = []
    stats = {"windows_dropped_missing_values": 0, "windows_dropped_at_failure": 0,
             "windows_dropped_short_history": 0}
    event_base, healthy_base = 0, 0
    ids = {}
    for s in series:
        f = np.asarray(failures.get(s.machine, np.empty(0)), dtype=np.float64)
        ids[s.machine] = event_base + np.arange(len(f))
        event_base += len(f)
    for s in series:
        n = len(s.times)
        if n < window:
            continue
        starts = np.arange(0, n - window + 1, stride)
        holes = np.concatenate([[0], np.cumsum(np.isnan(s.values).any(axis=1))])
        ok = holes[starts + window] == holes[starts]
        stats["windows_dropped_missing_values"] += int((~ok).sum())
        starts = starts[ok]
        t_start, t_end = s.times[starts], s.times[starts + window - 1]
        f = np.asarray(failures.get(s.machine, np.empty(0)), dtype=np.float64)
        nxt = np.searchsorted(f, t_end, side="left")  # first failure at or after the end
        prev = nxt - 1  # last failure before the end
        prev_t = np.full(len(starts), -np.inf)
        prev_t[prev >= 0] = f[prev[prev >= 0]]
        clear = t_start > prev_t + exclude_after
        stats["windows_dropped_at_failure"] += int((~clear).sum())
        starts, t_start, t_end, nxt, prev_t = (a[clear] for a in (starts, t_start, t_end, nxt,
                                                                   prev_t))
        has_next = nxt < len(f)
        rul = np.full(len(starts), np.inf)
        event = np.full(len(starts), -1, dtype=np.int64)
        rul[has_next] = f[nxt[has_next]] - t_end[has_next]
        event[has_next] = ids[s.machine][nxt[has_next]]
        # healthy machine-periods, counted from the last failure (or the record's start)
        origin = np.where(np.isfinite(prev_t), prev_t, s.times[0])
        period = np.floor((t_end - origin) / healthy_group).astype(np.int64)
        _, healthy_ids = np.unique(period[~has_next], return_inverse=True)
        group = event.copy()
        group[~has_next] = -1 - (healthy_base + healthy_ids)  # negative: renumbered below
        healthy_base += int(healthy_ids.max(initial=-1)) + 1
        view = np.lib.stride_tricks.sliding_window_view(s.values, window, axis=0)
        x = np.ascontiguousarray(view[starts], dtype=np.float32)
        if baseline_steps:
            center, scale, enough = machine_baseline(s.values, starts, baseline_steps)
            stats["windows_dropped_short_history"] += int((~enough).sum())
            x = ((x - center[:, :, None]) / scale[:, :, None]).astype(np.float32)
            keep = np.flatnonzero(enough)
            x, starts, t_end, rul, event, group = (a[keep] for a in (x, starts, t_end, rul,
                                                                      event, group))
        parts.append(Windows(
            x=x,
            y=(rul <= horizon).astype(np.int64), machine=np.full(len(starts), s.machine),
            time=t_end, rul=rul, event_id=event, group=group,
            time_to_record_end=s.times[-1] - t_end))
    if not parts or sum(len(p.y) for p in parts) == 0:
        longest = max(series, key=lambda s: len(s.times))
        raise DataError(f"no complete window of {window} steps: the longest gap-free stretch is "
                        f"shorter (longest record: machine {longest.machine!r}, "
                        f"{len(longest.times)} steps). Lower window or raise fill_limit")
    out = Windows(*(np.concatenate([getattr(p, k) for p in parts])
                    for k in Windows.__dataclass_fields__))
    # healthy groups got negative ids: shift them after the failure ids
    out.group = np.where(out.group < 0, event_base - 1 - out.group, out.group)
    return out, stats


def machine_baseline(values: np.ndarray, starts: np.ndarray, steps: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each window's per-sensor mean and std over the ``steps`` grid steps before it starts.

    Causal: only the machine's own earlier readings. Returns (center, scale) of shape
    (n_windows, n_sensors) and a mask of windows with at least half that history observed.
    """
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0).astype(np.float64)
    zero = np.zeros((1, values.shape[1]))
    s1 = np.concatenate([zero, np.cumsum(v, axis=0)])
    s2 = np.concatenate([zero, np.cumsum(v * v, axis=0)])
    cnt = np.concatenate([zero, np.cumsum(finite, axis=0)])
    lo = np.maximum(starts - steps, 0)
    n = cnt[starts] - cnt[lo]
    enough = (n >= steps / 2).all(axis=1)
    n = np.maximum(n, 1)
    center = (s1[starts] - s1[lo]) / n
    var = np.maximum((s2[starts] - s2[lo]) / n - center ** 2, 0.0)
    scale = np.maximum(np.sqrt(var), 1e-3 * np.abs(center) + 1e-6)
    return center, scale, enough


def check_horizon(series: list[MachineSeries], horizon: float, label: object = None) -> None:
    """A horizon longer than every machine's history makes every window positive: refuse it."""
    show = label or (lambda t: f"{t:g}")
    longest = max(series, key=lambda s: s.times[-1] - s.times[0])
    span = longest.times[-1] - longest.times[0]
    if horizon >= span:
        raise DataError(f"horizon {horizon:g} is longer than every machine's history (longest: "
                        f"machine {longest.machine!r}, {span:g} time units from "
                        f"{show(longest.times[0])} to {show(longest.times[-1])}); lower horizon")


def split_machines(machines: np.ndarray, test_fraction: float, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted machine ids of (train, test), a seeded permutation; at least one on each side."""
    unique = np.unique(machines)
    if len(unique) < 2:
        raise DataError(f"only {len(unique)} machine(s) have windows; the split by machine "
                        "needs at least 2 (one to train on, one to test on)")
    order = np.random.default_rng(seed).permutation(unique)
    n_test = min(max(1, int(round(test_fraction * len(unique)))), len(unique) - 1)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
