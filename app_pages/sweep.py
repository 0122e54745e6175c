"""Sweep: search the training, feature and augmentation settings automatically, many short runs compared live."""

from __future__ import annotations

import time
from dataclasses import replace

import streamlit as st

from lib.engine.jobs import JOB_QUEUE, SweepJob
from lib.sweep import (PRUNERS, SAMPLERS, Param, SearchSpace, SweepConfig, default_storage, list_sweeps, open_sweep,
                       searchable_params)
from lib.sweep.plots import (fig_importance, fig_parallel, fig_pareto, fig_trial_curves, log_steps, param_label,
                              power_of_ten, progress_text, trials_table)
from ui.common import active_dataset, feature_config, page_header, page_link
from ui.train_settings import train_settings

SWEEPABLE_KINDS = ("builtin", "folder", "csv", "catalog")  # sources a worker (here or on another machine) reopens
DEFAULT_PARAMS = ("train.learning_rate", "train.weight_decay")
PERSIST = dict(persist_state="session")  # the widgets keep their values when the page is left and opened again
OBJECTIVE_SETS = {"accuracy": ("val_accuracy",), "tradeoff": ("val_accuracy", "latency_ms", "n_parameters")}
OBJECTIVE_HELP = {"accuracy": "Validation accuracy only",
                  "tradeoff": "Accuracy, latency and size (Pareto front; no pruning)"}
SAMPLERS_SHORT = {"tpe": "TPE", "random": "random", "grid": "grid"}
PRUNERS_SHORT = {"median": "median", "halving": "successive halving", "none": "none"}


# ----------------------------------------------------------------------------------------------- helpers
def storage() -> str:
    return default_storage()


def my_jobs(name: str | None = None) -> list[SweepJob]:
    """This session's sweep jobs (of sweep ``name`` when given), oldest first."""
    ids = set(st.session_state.get("sweep_job_ids", []))
    return [j for j in JOB_QUEUE.jobs if j.job_id in ids and isinstance(j, SweepJob)
            and (name is None or j.sweep_name == name)]


def range_widget(param: Param) -> Param:
    """The slider (or choices) of one parameter; returns the parameter with the range chosen."""
    key, label = f"sweep_range_{param.name}", f"{param_label(param.name)} (`{param.name}`)"
    widget = dict(key=key, **PERSIST)
    if param.kind == "categorical":
        chosen = st.multiselect(label, list(param.choices), default=list(param.choices), **widget,
                                format_func=str)
        return replace(param, choices=tuple(chosen))
    if param.log:
        low, high = st.select_slider(label + ", log scale", log_steps(param.low, param.high),
                                     value=(float(param.low), float(param.high)), **widget,
                                     format_func=power_of_ten)
        return replace(param, low=low, high=high)
    if param.kind == "int":
        low, high = st.slider(label, int(param.low), int(param.high), (int(param.low), int(param.high)),
                              int(param.step or 1), **widget)
        return replace(param, low=low, high=high)
    step = (param.high - param.low) / 100
    low, high = st.slider(label, float(param.low), float(param.high), (float(param.low), float(param.high)),
                          float(f"{step:.1g}"), **widget)
    return replace(param, low=low, high=high)


def sweep_name_default() -> str:
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S")


# --------------------------------------------------------------------------------------------- callbacks
def start(config: SweepConfig | None, dataset) -> None:
    """Create (or resume) the sweep and queue its worker; a session may queue several."""
    st.session_state["sweep_error"] = None
    if config is None:
        return
    try:
        job = JOB_QUEUE.submit_sweep(dataset, config, storage())
    except ValueError as error:
        st.session_state["sweep_error"] = f"Cannot start the sweep: {error}."
        return
    st.session_state.setdefault("sweep_job_ids", []).append(job.job_id)
    st.session_state["sweep_view"] = config.name
    st.session_state["sweep_name"] = sweep_name_default()  # the next sweep gets a fresh name


def stop(name: str | None) -> None:
    for job in my_jobs(name):
        job.stop()


def use_trial(run_id: str) -> None:
    st.session_state["run_id"] = run_id  # this session's active run (other sessions keep theirs)
    st.session_state["sweep_used"] = run_id


# ------------------------------------------------------------------------------------------------ define
def define_sweep(dataset) -> SweepConfig | None:
    """The widgets of a new sweep; returns its config, or None after showing what is wrong."""
    params = searchable_params()
    base = None
    try:
        base = train_settings()
    except ValueError as error:
        st.error(f"The Train page's settings are invalid: {error}. Fix them on the Train page first.")
    features = feature_config()
    if base is not None:
        st.caption(f"Every trial starts from the Train page's settings ({base.model}, {base.epochs} epochs, batch "
                   f"{base.batch_size}, learning rate {base.learning_rate:g}) and the Transform lab's features "
                   f"({features.kind}, {features.n_bins} bins); the parameters below vary.")
    page_link("app_pages/train.py", "Change the base settings on the Train page")
    chosen = st.multiselect("Parameters to search", list(params), default=list(DEFAULT_PARAMS),
                            key="sweep_params", **PERSIST,
                            format_func=lambda n: f"{param_label(n)} ({n.split('.')[0]})")
    space_col, how_col = st.columns([3, 2], gap="large")
    with space_col:
        ranges = [range_widget(params[name]) for name in chosen]
    with how_col:
        objectives = st.radio("Objectives", list(OBJECTIVE_SETS), format_func=OBJECTIVE_HELP.get,
                              key="sweep_objectives", **PERSIST)
        a, b = st.columns(2)
        sampler = a.selectbox("Sampler", SAMPLERS, format_func=SAMPLERS_SHORT.get, key="sweep_sampler", **PERSIST,
                              help="TPE learns from the trials so far where good settings lie; random draws "
                                   "independently; grid tries every combination (3 points per range).")
        pruner = b.selectbox("Pruner", PRUNERS, format_func=PRUNERS_SHORT.get, key="sweep_pruner", **PERSIST,
                             disabled=objectives != "accuracy",
                             help="Stops poor trials early from their accuracy after each epoch. Median: below the "
                                  "median of the earlier trials at that epoch. Successive halving: not among the "
                                  "best third. Only with accuracy as the one objective.")
        c, d = st.columns(2)
        n_trials = c.number_input("Trials (0: no limit)", 0, 1000, 20, key="sweep_trials", **PERSIST)
        minutes = d.number_input("Minutes (0: no limit)", 0.0, 24 * 60.0, 0.0, 5.0, key="sweep_minutes", **PERSIST)
        e, f = st.columns([3, 1])
        name = e.text_input("Sweep name", key="sweep_name", **PERSIST,
                            help="Like a run name: letters, digits, '-', '_' and '.'. Its trials are saved as "
                                 "runs <name>-t000, <name>-t001, …")
        seed = f.number_input("Seed", 0, 2**31 - 1, 0, key="sweep_seed", **PERSIST,
                              help="Seeds the sampler's draws: the same seed draws the same trials.")
    if base is None:
        return None
    try:
        space = SearchSpace(tuple(ranges))
        return SweepConfig(name=name.strip(), space=space, source=dataset.source, feature_config=features,
                           train_config=base, sampler=sampler,
                           pruner=pruner if objectives == "accuracy" else "none",
                           objectives=OBJECTIVE_SETS[objectives], n_trials=int(n_trials) or None,
                           minutes=float(minutes) or None, seed=int(seed))
    except ValueError as error:
        st.error(f"This sweep cannot start: {error}. Change it above.")
        return None


def draw_buttons(config: SweepConfig | None, dataset) -> None:
    view = st.session_state.get("sweep_view")
    running = [j for j in my_jobs(view) if not j.ended]
    buttons = st.container(horizontal=True)
    buttons.button("Start sweep", type="primary", key="sweep_start", on_click=start, args=(config, dataset),
                   disabled=config is None, icon=":material/play_arrow:",
                   help="Queue a worker for this sweep: it runs its trials one after another in the background. "
                        "Start again to queue another sweep.")
    buttons.button("Stop", key="sweep_stop", on_click=stop, args=(view,), disabled=not running,
                   icon=":material/stop:", help="Stop this sweep's worker: the running trial ends at its next step.")
    if st.session_state.get("sweep_error"):
        st.error(st.session_state["sweep_error"] + " Change the name or the settings and start again.")


# ------------------------------------------------------------------------------------------------- watch
def progress_line(sweep, trials) -> None:
    """Trials done, pruned and running of the budget, and the session's worker's state."""
    fraction, text = progress_text(sweep.counts(), sweep.config.n_trials, sweep.config.minutes)
    st.progress(fraction, text=text)
    for job in my_jobs(sweep.name):
        snap = job.snapshot()
        if snap.state == "queued":
            st.info(f"Your worker is waiting in line: position {snap.position} for the {job.device_key} device "
                    "(a training job or another sweep is using it).", icon=":material/hourglass_top:")
        elif snap.state == "running" and snap.start is not None and snap.steps:
            st.caption(f"Running trial: step {snap.steps[-1].step:,} / {snap.start.total_steps:,}, "
                       f"epoch {snap.steps[-1].epoch}.")
        elif snap.state == "failed" and snap.done is not None:
            st.error(f"Your worker stopped: {snap.done.message}. Start the sweep again to resume it.")


def use_this_trial(trials, best: list[int]) -> None:
    """Choose a trial that saved a run (complete or pruned) and make that run the session's active run."""
    usable = [t for t in trials if t.run_id and t.state in ("complete", "pruned")]
    if not usable:
        return
    numbers = [t.number for t in usable]
    index = numbers.index(best[0]) if best and best[0] in numbers else 0
    by_number = {t.number: t for t in usable}
    mark = " · best" if len(best) == 1 else " · on the Pareto front"
    a, b = st.columns([3, 1], vertical_alignment="bottom")
    number = a.selectbox("Trial", numbers, index=index, key="sweep_trial_pick",
                         format_func=lambda n: f"trial {n}: {by_number[n].run_id} ({by_number[n].state}, val "
                                               f"accuracy {by_number[n].values.get('val_accuracy', float('nan')):.3f})"
                                               + (mark if n in best else ""))
    run_id = by_number[number].run_id
    if b.button("Use this trial", key="sweep_use", icon=":material/check:", type="primary",
                help="Make this trial's run your active run (Evaluate, Inference and Record use it)."):
        use_trial(run_id)
        st.rerun(scope="app")  # the sidebar shows the new active run
    if st.session_state.get("sweep_used") == run_id:
        st.success(f"Run **{run_id}** is now your active run in this browser session.", icon=":material/check_circle:")
        page_link("app_pages/evaluate.py", "Evaluate this run")


def importance_of(sweep, n_complete: int) -> dict[str, float]:
    """The sweep's parameter importance, computed again only when another trial has completed (fANOVA takes a
    moment; the live view polls every 2 s)."""
    key = (sweep.name, n_complete)
    cached = st.session_state.get("sweep_importance")
    if cached is None or cached[0] != key:
        cached = (key, sweep.importance() if n_complete >= 2 else {})
        st.session_state["sweep_importance"] = cached
    return cached[1]


def draw_sweep(name: str) -> None:
    """Everything about sweep ``name``: progress, curves, table, parallel coordinates, importance, Pareto front."""
    try:
        sweep = open_sweep(name, storage())
        trials = sweep.trials()
    except ValueError as error:
        st.error(f"Cannot open sweep {name!r}: {error}. Choose another sweep above.")
        return
    config = sweep.config
    progress_line(sweep, trials)
    if not trials:
        st.info("No trial has started yet: the curves and the table appear here as the trials train.")
        return
    best = [t.number for t in sweep.best()]  # the best trial, or the Pareto front with several objectives
    names = config.space.names
    st.plotly_chart(fig_trial_curves(trials, best=best if len(config.objectives) == 1 else None),
                    key="sweep_fig_curves")
    st.dataframe(trials_table(trials, names, config.objectives), hide_index=True, key="sweep_table",
                 column_config={"val_accuracy": st.column_config.NumberColumn("val accuracy", format="%.3f")})
    use_this_trial(trials, best)
    # Full width: each parameter is an axis, and their titles need the room.
    st.plotly_chart(fig_parallel(trials, names, log={p.name for p in config.space.params if p.log}),
                    key="sweep_fig_parallel")
    right, _ = st.columns([1, 1], gap="large")
    importance = importance_of(sweep, sum(t.state == "complete" for t in trials))
    if importance:
        right.plotly_chart(fig_importance(importance), key="sweep_fig_importance")
        right.caption("The share of the variation in validation accuracy that each parameter explains (Optuna's "
                      "fANOVA over the complete trials).")
    else:
        right.caption("Parameter importance appears once a few trials have completed.")
    if len(config.objectives) > 1:
        a, b = st.columns(2)
        a.plotly_chart(fig_pareto(trials, "latency_ms", title="Accuracy against latency"), key="sweep_fig_latency")
        b.plotly_chart(fig_pareto(trials, "n_parameters", title="Accuracy against size"), key="sweep_fig_size")


def watching() -> bool:
    return any(not j.ended for j in my_jobs(st.session_state.get("sweep_view")))


def live_view() -> None:
    """The watched sweep, redrawn every 2 s while one of this session's workers runs it (in a fragment)."""
    name = st.session_state.get("sweep_view")
    if name:
        draw_sweep(name)
    if watching() != st.session_state.get("sweep_was_watching"):  # started or ended: polling starts or stops
        st.session_state["sweep_was_watching"] = watching()
        st.rerun(scope="app")


# ------------------------------------------------------------------------------------------------- page
page_header("Sweep", "Search the training, feature and augmentation settings automatically: many short runs "
                     "(trials), the poor ones stopped early, compared live.")
st.session_state.setdefault("sweep_error", None)
st.session_state.setdefault("sweep_name", sweep_name_default())
st.session_state.setdefault("sweep_job_ids", [])
st.session_state.setdefault("sweep_was_watching", watching())

dataset = active_dataset()
source = getattr(dataset, "source", None) or {}
if dataset is not None and source.get("kind") not in SWEEPABLE_KINDS:
    st.info("This dataset cannot be swept: a sweep's workers reopen the dataset from where it lives, and this one "
            "has no source to reopen. Sweeps run on the built-in set, a folder, a CSV manifest or a real dataset "
            "from the catalog: choose one on the Dataset page.")
elif dataset is not None:
    with st.expander("New sweep", expanded=not my_jobs(), icon=":material/tune:"):
        config = define_sweep(dataset)
    draw_buttons(config, dataset)

st.divider()
try:
    known = list_sweeps(storage())
except ValueError as error:
    known = []
    st.error(f"Cannot read the sweeps: {error}. Ask whoever runs the server to check the runs folder.")
if known:
    if st.session_state.get("sweep_view") not in known:
        st.session_state["sweep_view"] = known[-1]
    st.selectbox("Sweep", known, key="sweep_view", **PERSIST,
                 help="Sweeps saved in the runs folder (yours and others'); a sweep started here is shown at once.")
    st.fragment(live_view, run_every=2.0 if watching() else None)()
else:
    st.info("No sweep yet: define one above and start it. Its trials appear here as they train.")
