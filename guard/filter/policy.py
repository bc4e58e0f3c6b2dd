"""The keep policy: from the checks' flags to ``guard_keep``, ``guard_reasons`` and ``guard_weight``."""

from __future__ import annotations

from guard.config import PolicyConfig

# Always rejected, whatever the policy: the store holds the record already.
ALWAYS_REJECTED = "already_ingested"


def decide(policy: PolicyConfig, input_reasons: list, flags: dict[str, list], p_machine: list | None):
    """guard_keep, guard_reasons and guard_weight of n records.

    Args:
        policy: which reasons reject, and the weight exponent ``machine_weight_beta``.
        input_reasons: (n,) None or "empty"/"malformed" (a record that could not be checked).
        flags: reason -> (n,) list, the matched id (True for other flags) or None; reasons
            are listed in this order after the input reason.
        p_machine: (n,) P(machine) or None per record, or None without a machine check; a
            kept record with one weighs (1 - p_machine) ** machine_weight_beta, others 1.0
            (kept) or 0.0.
    Returns:
        (keep, reasons, weights): lists of n bools, n lists of reasons, n floats.
    """
    reject = {*policy.reject, ALWAYS_REJECTED}
    beta = policy.machine_weight_beta
    keep = [reason is None for reason in input_reasons]
    reasons = [[reason] if reason else [] for reason in input_reasons]
    for reason, of in flags.items():  # each reason's raised records, in the order of ``flags``
        rejects = reason in reject
        for i in [i for i, matched in enumerate(of) if matched is not None]:
            reasons[i].append(reason)
            if rejects:
                keep[i] = False
    if p_machine is None:
        return keep, reasons, [float(kept) for kept in keep]
    weights = [
        (1.0 - p) ** beta if kept and p is not None else float(kept) for kept, p in zip(keep, p_machine)
    ]
    return keep, reasons, weights
