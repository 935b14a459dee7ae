"""Whether a child's tree is over one of its limits, and how to say so.

Pure: the monitor hands in the latest sample and what it tracked (how long the tree
has been silent, how long its CPU has stayed over the limit); the first limit found
over wins, in a fixed order (memory, cpu, runtime, fds, no_output).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiwgd.config.limits import Limits
from aiwgd.monitor.sampler import Usage

MIB = 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    """One limit a tree is over: `reason` is a short key, `detail` a line for people."""

    reason: str
    detail: str
    value: float
    limit: float


@dataclass(frozen=True)
class Facts:
    """What the judge needs besides the sample (all in seconds, from monotonic time)."""

    runtime_s: float
    silent_s: float
    cpu_over_s: float | None  # how long CPU has stayed over the limit; None: it is not


def judge(limits: Limits, usage: Usage, facts: Facts) -> Verdict | None:
    """The first limit `usage` is over, or None."""
    if limits.memory_mb is not None and usage.rss_bytes > limits.memory_mb * MIB:
        mib = usage.rss_bytes / MIB
        return Verdict(
            "memory",
            f"memory {mib:.0f} MiB over the limit of {limits.memory_mb:g} MiB",
            round(mib, 1),
            limits.memory_mb,
        )
    if (
        limits.cpu_percent is not None
        and facts.cpu_over_s is not None
        and facts.cpu_over_s >= limits.cpu_window_s
    ):
        return Verdict(
            "cpu",
            f"cpu {usage.cpu_percent:.0f}% over the limit of {limits.cpu_percent:g}% "
            f"for {limits.cpu_window_s:g} s",
            usage.cpu_percent,
            limits.cpu_percent,
        )
    if limits.max_runtime_s is not None and facts.runtime_s > limits.max_runtime_s:
        return Verdict(
            "runtime",
            f"runtime {facts.runtime_s:.0f} s over the limit of {limits.max_runtime_s:g} s",
            round(facts.runtime_s, 1),
            limits.max_runtime_s,
        )
    if limits.max_fds is not None and usage.fds > limits.max_fds:
        return Verdict(
            "fds",
            f"open files {usage.fds} over the limit of {limits.max_fds}",
            usage.fds,
            limits.max_fds,
        )
    if limits.no_output_s is not None and facts.silent_s >= limits.no_output_s:
        return Verdict(
            "no_output",
            f"no output for {limits.no_output_s:g} s",
            round(facts.silent_s, 1),
            limits.no_output_s,
        )
    return None


def cpu_over(limits: Limits, usage: Usage) -> bool:
    """Whether this one sample's CPU is over the limit (sustained is the caller's)."""
    return limits.cpu_percent is not None and usage.cpu_percent > limits.cpu_percent
