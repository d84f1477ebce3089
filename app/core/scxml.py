"""The SCXML algorithm (W3C SCXML 1.0, Appendix D), one function per procedure, no caching.

Read it beside Appendix D (or XState's ``stateUtils.ts``): ``select_transitions`` is
selectTransitions (``event_type=None``: selectEventlessTransitions), then
``remove_conflicting_transitions``, ``microstep`` (``exit_states``, the transitions' content,
``enter_states``), ``compute_exit_set``, ``transition_domain`` (getTransitionDomain),
``find_lcca``, ``get_effective_target_states``, ``compute_entry_set``,
``add_descendant_states_to_enter``, ``add_ancestor_states_to_enter`` and
``is_in_final_state``. States are dotted paths; a state's proper ancestors are
``chart.states[path].ancestors`` (nearest first, ending with the root ``""``).

Each function reads the working state of one macrostep (:class:`MacrostepRun`: the
configuration, data, recorded history) and the chart's static facts (:mod:`app.core.facts`),
and stores nothing across steps: :mod:`app.core.plans` caches what the configuration alone
decides, around these functions. Run-time errors are :class:`StepFailure`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from app.core import paths
from app.core.errors import StepFailure
from app.core.model import ROOT, Chart, StateNode, Transition
from app.core.run import MacrostepRun

# -- selecting transitions -------------------------------------------------------------------


def select_transitions(run: MacrostepRun, event_type: str | None) -> list[Transition]:
    """selectTransitions: for each active atomic state in document order, the first enabled
    transition found from the state up through its ancestors; then conflicts are removed."""
    return remove_conflicting_transitions(run, enabled_transitions(run, event_type))


def enabled_transitions(run: MacrostepRun, event_type: str | None) -> list[Transition]:
    """The first loop of selectTransitions: enabled transitions before conflicts are removed
    (``event_type`` ``None``: the eventless, ``always``, transitions)."""
    states = run.chart.states
    enabled: list[Transition] = []
    for atomic in active_atomic_states(run.chart, run.config):
        for path in (atomic, *states[atomic].ancestors):
            node = states[path]
            candidates = node.always if event_type is None else node.transitions.get(event_type, ())
            chosen = next((t for t in candidates if _is_enabled(run, t)), None)
            if chosen is not None:
                if chosen not in enabled:
                    enabled.append(chosen)
                break
    return enabled


def _is_enabled(run: MacrostepRun, transition: Transition) -> bool:
    """conditionMatch: a ``guard`` or ``when`` holds (counted against the step's budget)."""
    if transition.guard is None and transition.when is None:
        return True
    run.evaluations += 1
    if run.evaluations > run.chart.limits.evaluations_per_step:
        raise StepFailure(
            f"more than {run.chart.limits.evaluations_per_step} guard/when evaluations in one "
            "step (OMNINODE_MAX_EVALUATIONS_PER_STEP)"
        )
    if transition.guard is not None:
        predicate = run.chart.guards.get(transition.guard)
        if predicate is None:
            raise StepFailure(f"guard '{transition.guard}' is not registered")
        try:
            return bool(predicate(run.data, run.event_vars))
        except Exception as exc:
            raise StepFailure(
                f"guard '{transition.guard}' raised {type(exc).__name__}: {exc}"
            ) from exc
    if transition.when is not None:
        verdict = run.evaluate(transition.when)
        if not isinstance(verdict, bool):
            raise StepFailure(
                f"'when' expression {transition.when.source!r} (line {transition.when.line}) "
                f"returned {type(verdict).__name__}, not bool"
            )
        return verdict
    return True


def remove_conflicting_transitions(
    run: MacrostepRun, enabled: list[Transition]
) -> list[Transition]:
    """removeConflictingTransitions: when two exit sets intersect, a transition from a
    descendant preempts one from its ancestor; otherwise the earlier selection wins."""
    kept: list[Transition] = []
    exit_sets: dict[int, set[str]] = {}
    for candidate in enabled:
        candidate_exits = compute_exit_set(run, [candidate])
        preempted = False
        to_drop: list[Transition] = []
        for earlier in kept:
            if candidate_exits & exit_sets[earlier.order]:
                if paths.is_descendant(candidate.source, earlier.source):
                    to_drop.append(earlier)
                else:
                    preempted = True
                    break
        if not preempted:
            kept = [t for t in kept if t not in to_drop]
            kept.append(candidate)
            exit_sets[candidate.order] = candidate_exits
    return kept


# -- the microstep -----------------------------------------------------------------------------


def microstep(run: MacrostepRun, enabled: list[Transition]) -> None:
    """microstep: exit the exit set, run the transitions' content, enter the entry set.

    The entry set is computed after exiting: exiting records the history that a history
    target's entry set reads.
    """
    exit_states(run, exit_order(run, enabled))
    owners = transition_owners(run, enabled)
    entries = entry_order(run, enabled)
    execute_transition_content(run, enabled, owners)
    enter_states(run, entries)


def execute_transition_content(
    run: MacrostepRun, enabled: list[Transition], owners: Sequence[str]
) -> None:
    """executeTransitionContent, in selection order; ``owners`` from :func:`transition_owners`."""
    for transition, owner in zip(enabled, owners, strict=True):
        run.taken.append((transition.source, transition.targets))
        run.execute(transition.actions, owner)


def transition_owners(run: MacrostepRun, enabled: list[Transition]) -> tuple[str, ...]:
    """Per transition, the state its dispatches belong to: the outermost state it enters (so
    leaving that state makes them stale); a targetless transition's, its source."""
    return tuple(_transition_owner(run, t) for t in enabled)


def _transition_owner(run: MacrostepRun, transition: Transition) -> str:
    if not transition.targets:
        return transition.source
    states = run.chart.states
    domain = transition_domain(run, transition)
    target = get_effective_target_states(run, transition)[0]
    for path in (target, *states[target].ancestors):
        if states[path].parent == domain:
            return path
    return transition.source


# -- exiting -----------------------------------------------------------------------------------


def exit_order(run: MacrostepRun, transitions: list[Transition]) -> tuple[str, ...]:
    """The exit set in exit order: deepest first (reverse document order)."""
    return tuple(sorted(compute_exit_set(run, transitions), key=exit_key(run.chart)))


def compute_exit_set(run: MacrostepRun, transitions: list[Transition]) -> set[str]:
    """computeExitSet: the active states strictly inside each transition's domain."""
    descendants = run.chart.facts.descendants
    exits: set[str] = set()
    for transition in transitions:
        if transition.targets:
            exits |= run.config & descendants[transition_domain(run, transition)]
    return exits


def exit_states(run: MacrostepRun, ordered: Sequence[str]) -> None:
    """exitStates, deepest first: record history, run exit actions, cancel owned
    timers/dispatches."""
    chart = run.chart
    leaving = set(ordered)
    for path in leaving & chart.facts.history_parents:
        for child in chart.states[path].children:
            history = chart.states[child]
            if history.is_history:
                run.record_history(child, _recorded(run, path, deep=history.history_type == "deep"))
    for path in ordered:
        node = chart.states[path]
        if not node.exit.is_empty:
            run.execute(node.exit, next(a for a in node.ancestors if a not in leaving))
        run.cancel_owned_by(path)
        run.config.discard(path)


def _recorded(run: MacrostepRun, parent: str, deep: bool) -> tuple[str, ...]:
    """What a history child of ``parent`` records: the active atomic descendants (deep) or
    the active children (shallow), in document order."""
    states = run.chart.states
    if deep:
        found = (s for s in run.config if states[s].is_atomic and paths.is_descendant(s, parent))
    else:
        found = (s for s in run.config if states[s].parent == parent)
    return tuple(sorted(found, key=lambda s: states[s].order))


# -- domains -----------------------------------------------------------------------------------


def transition_domain(run: MacrostepRun, transition: Transition) -> str:
    """getTransitionDomain: the innermost compound state (or root) the transition stays
    inside. Static for a transition without a history target (a fact of the chart); for one
    with a history target it depends on the recorded history."""
    domain = run.chart.facts.domains.get(transition.order)
    if domain is not None:
        return domain
    return domain_of(run.chart.states, transition, get_effective_target_states(run, transition))


def domain_of(
    states: Mapping[str, StateNode], transition: Transition, targets: Sequence[str]
) -> str:
    """getTransitionDomain given the effective targets: the source itself for an internal
    transition of a compound source whose targets all lie inside it, else the LCCA."""
    source = transition.source
    if (
        transition.internal
        and states[source].is_compound
        and all(paths.is_descendant(t, source) for t in targets)
    ):
        return source
    return find_lcca(states, [source, *targets])


def find_lcca(states: Mapping[str, StateNode], members: Sequence[str]) -> str:
    """findLCCA: the least common compound ancestor (parallel ancestors are skipped)."""
    head, rest = members[0], members[1:]
    for ancestor in states[head].ancestors:
        node = states[ancestor]
        if (node.is_compound or ancestor == ROOT) and all(
            paths.is_descendant(s, ancestor) for s in rest
        ):
            return ancestor
    return ROOT


def get_effective_target_states(run: MacrostepRun, transition: Transition) -> list[str]:
    """getEffectiveTargetStates: targets with history states replaced by what they restore."""
    states = run.chart.states
    found: list[str] = []
    for target in transition.targets:
        node = states[target]
        if node.is_history:
            found.extend(run.history.get(target) or history_default(states, node))
        else:
            found.append(target)
    return found


def history_default(states: Mapping[str, StateNode], node: StateNode) -> tuple[str, ...]:
    """A history state's default: its ``target``, else its parent's initial state."""
    if node.history_default:
        return node.history_default
    parent = states[node.parent or ROOT]
    return (parent.initial,) if parent.initial else ()


# -- entering ----------------------------------------------------------------------------------


def entry_order(run: MacrostepRun, transitions: list[Transition]) -> tuple[str, ...]:
    """The entry set in entry order: document order."""
    states = run.chart.states
    return tuple(sorted(compute_entry_set(run, transitions), key=lambda s: states[s].order))


def compute_entry_set(run: MacrostepRun, transitions: list[Transition]) -> set[str]:
    """computeEntrySet: each target with its descendants to enter, and the ancestors between
    each effective target and the transition's domain."""
    to_enter: set[str] = set()
    for transition in transitions:
        if not transition.targets:
            continue
        for target in transition.targets:
            add_descendant_states_to_enter(run, target, to_enter)
        domain = transition_domain(run, transition)
        for target in get_effective_target_states(run, transition):
            add_ancestor_states_to_enter(run, target, domain, to_enter)
    return to_enter


def add_descendant_states_to_enter(run: MacrostepRun, path: str, to_enter: set[str]) -> None:
    """addDescendantStatesToEnter: a history state enters what it restores; a compound state
    its initial state; a parallel state every region."""
    states = run.chart.states
    node = states[path]
    if node.is_history:
        parent = node.parent or ROOT
        restored = run.history.get(path) or history_default(states, node)
        for state in restored:
            add_descendant_states_to_enter(run, state, to_enter)
        for state in restored:
            add_ancestor_states_to_enter(run, state, parent, to_enter)
        return
    to_enter.add(path)
    if node.is_compound and node.initial:
        add_descendant_states_to_enter(run, node.initial, to_enter)
        add_ancestor_states_to_enter(run, node.initial, path, to_enter)
    elif node.is_parallel:
        _add_missing_regions(run, node, to_enter)


def add_ancestor_states_to_enter(
    run: MacrostepRun, path: str, until: str, to_enter: set[str]
) -> None:
    """addAncestorStatesToEnter: the proper ancestors of ``path`` below ``until``, with every
    region of a parallel one among them."""
    states = run.chart.states
    for ancestor in states[path].ancestors:
        if ancestor in (until, ROOT):
            return
        to_enter.add(ancestor)
        node = states[ancestor]
        if node.is_parallel:
            _add_missing_regions(run, node, to_enter)


def _add_missing_regions(run: MacrostepRun, node: StateNode, to_enter: set[str]) -> None:
    """The regions of a parallel state that nothing entered yet enter by default."""
    for region in node.children:
        if run.chart.states[region].is_history:
            continue
        if not any(paths.is_descendant(s, region) or s == region for s in to_enter):
            add_descendant_states_to_enter(run, region, to_enter)


def enter_states(run: MacrostepRun, ordered: Sequence[str]) -> None:
    """enterStates, in document order: run entry actions, arm timers, note the states whose
    ``invoke`` starts when the macrostep settles, raise done events."""
    states = run.chart.states
    for path in ordered:
        node = states[path]
        run.config.add(path)
        run.execute(node.entry, path)
        for timer in node.after:
            run.arm(path, timer)
        if node.invoke:
            run.entered.append(path)
        if node.is_final:
            _on_final_entered(run, node)
            if run.status != "active":
                return


def _on_final_entered(run: MacrostepRun, node: StateNode) -> None:
    """A top-level final state ends the instance; a nested one raises ``$done.<parent>``, and
    ``$done.<grandparent>`` when that completes every region of a parallel grandparent."""
    states = run.chart.states
    parent = node.parent or ROOT
    if parent == ROOT:
        if node.output is not None:  # SCXML <donedata>: what a parent's `.done` carries
            run.output = run.evaluate_map(node.output, f"output of {node.path}")
        run.finish("failed" if node.status == "failed" else "done", node.path)
        return
    run.internal_queue.append((f"$done.{parent}", {}))
    grandparent = states[parent].parent
    if grandparent is not None and states[grandparent].is_parallel:
        regions = [c for c in states[grandparent].children if not states[c].is_history]
        if all(is_in_final_state(run, region) for region in regions):
            run.internal_queue.append((f"$done.{grandparent}", {}))


def is_in_final_state(run: MacrostepRun, path: str) -> bool:
    """isInFinalState: a compound state with an active final child, or a parallel state
    whose every region is in a final state."""
    states = run.chart.states
    node = states[path]
    if node.is_compound:
        return any(states[c].is_final and c in run.config for c in node.children)
    if node.is_parallel:
        regions = [c for c in node.children if not states[c].is_history]
        return all(is_in_final_state(run, c) for c in regions)
    return False


# -- configurations ----------------------------------------------------------------------------


def full_configuration(chart: Chart, atomic: Sequence[str]) -> frozenset[str]:
    """The active states of a stored configuration: its atomic states, their ancestors and
    the root."""
    states = chart.states
    return frozenset({ROOT, *atomic, *(a for p in atomic for a in states[p].ancestors)})


def atomic_configuration(chart: Chart, config: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The stored form of a configuration: its atomic states, sorted."""
    return tuple(sorted(s for s in config if s != ROOT and chart.states[s].is_atomic))


def active_atomic_states(chart: Chart, config: set[str]) -> list[str]:
    """The active atomic states in document order."""
    states = chart.states
    atomic = [s for s in config if s != ROOT and states[s].is_atomic]
    if len(atomic) > 1:
        atomic.sort(key=lambda s: states[s].order)
    return atomic


def exit_key(chart: Chart) -> Callable[[str], int]:
    """Exit order: reverse document order, so descendants leave before their ancestors."""
    return lambda s: -chart.states[s].order
