"""The ``diffsim potential`` subcommand and its actions, and the potential's section of
``diffsim demo``.

    diffsim potential generate   EMT-labelled reference data to an ase.db or extxyz file
    diffsim potential train      a potential (or a committee) on energies, forces and stress
    diffsim potential evaluate   its errors on a dataset, per config_type
    diffsim potential validate   physical properties beside a reference calculator
    diffsim potential select     the frames of a trajectory where a committee disagrees most
    diffsim potential md         MD with a model (NVE, NVT, NPT; replicas with error bars)

:func:`register` adds them to the ``diffsim`` command (:mod:`diffsim.cli`); each imports what it
needs when it runs, so ``diffsim --help`` loads no model code.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="diffsim")
>>> register(parser.add_subparsers(dest="command"))
>>> parser.parse_args(["potential", "train", "--data", __file__, "--quick"]).epochs
200
"""

from __future__ import annotations

import argparse

from diffsim.command import (
    Parser,
    UsageError,
    cluster_client,
    cluster_options,
    count,
    dataset_output,
    input_file,
    nonnegative,
    nonnegative_float,
    number,
    output_file,
    positive,
    seed_type,
)
from diffsim.demo import DemoSection

from .demo import demo_section

DEMO_SECTIONS = (DemoSection("potential", "EMT copper data, a learned potential, MD", demo_section,
                             ("emt_cu.db", "model_cu.npz", "learning_curve.png", "force_parity.png", "nve_energy.png",
                              "rdf.png")),)


def register(sub) -> None:
    """Add ``potential`` and its actions to the subparsers ``sub`` of the ``diffsim`` command."""
    pot = sub.add_parser("potential", help="learned interatomic potentials: generate, train, evaluate, validate, "
                                           "select, md",
                         description="Learned interatomic potentials: generate EMT data, train (committees too), "
                                     "evaluate, validate physical properties, select uncertain frames, run MD.")
    act = pot.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    for add in (_add_generate, _add_train, _add_evaluate, _add_validate, _add_select, _add_md):
        add(act)


def _add_generate(act) -> None:
    """Register ``potential generate``."""
    gen = act.add_parser("generate", help="EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db",
                         description=_potential_generate.__doc__)
    gen.add_argument("--element", default="Cu", help="an EMT element or alloy, e.g. Cu, CuAu (default Cu)")
    gen.add_argument("--out", default="emt.db", type=dataset_output,
                     help="the file to write: .db (ase.db) or .xyz/.extxyz (default emt.db)")
    gen.add_argument("--size", type=count, default=3, help="fcc cubic cell repeated size³ times (default 3: 108 atoms)")
    gen.add_argument("--vacancy-size", type=count, help="the vacancy cells' repetitions (default --size); make them "
                     "larger than the model's cutoff so that it sees one vacancy, not its periodic images")
    gen.add_argument("--temperatures", type=positive, nargs="+", default=[300.0, 600.0, 900.0, 1200.0],
                     help="Langevin MD temperatures in K (default 300 600 900 1200)")
    gen.add_argument("--md-samples", type=nonnegative, default=50, help="MD samples per temperature (default 50)")
    gen.add_argument("--eos", type=nonnegative, default=40,
                     help="isotropically scaled crystals (volume ±10 %%) for the equation of state (default 40)")
    gen.add_argument("--seed", type=seed_type, default=0, help="random seed (default 0)")
    gen.add_argument("--quick", action="store_true", help="a small dataset")
    cluster_options(gen)
    gen.set_defaults(func=_potential_generate)


def _add_train(act) -> None:
    """Register ``potential train``."""
    tr = act.add_parser("train", help="train a potential on energies and forces", description=_potential_train.__doc__)
    tr.add_argument("--data", required=True, type=input_file, help="ase.db or extxyz with energies and forces")
    tr.add_argument("--out", default="model.npz", type=output_file, help="the model file to write (default model.npz)")
    tr.add_argument("--model", choices=["acsf", "painn"], default="acsf",
                    help="acsf: per-element networks on symmetry functions (default); painn: equivariant message "
                         "passing")
    tr.add_argument("--hidden", type=count, nargs="+", default=[32, 32],
                    help="acsf: hidden layer widths (default 32 32)")
    tr.add_argument("--features", type=count, default=32, help="painn: feature width (default 32)")
    tr.add_argument("--layers", type=count, default=2, help="painn: interaction layers (default 2)")
    tr.add_argument("--cutoff", type=positive, default=4.5, help="painn: pair cutoff in Å (default 4.5)")
    tr.add_argument("--epochs", type=count, default=200, help="epochs (Adam) or iterations (L-BFGS)")
    tr.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                    help="Adam on minibatches (default) or full-batch L-BFGS")
    tr.add_argument("--batch-size", type=count, default=8, help="structures per Adam step (default 8)")
    tr.add_argument("--learning-rate", type=positive,
                    help="Adam's initial learning rate (default 5e-3 for acsf, 2e-3 for painn)")
    tr.add_argument("--checkpoint", type=output_file,
                    help="save the whole training state here after every epoch (one file, written atomically) and "
                         "resume from it; a checkpoint of another model, other options or other data is refused")
    tr.add_argument("--curve", metavar="FILE", type=output_file, help="write the learning curve to FILE")
    tr.add_argument("--seed", type=seed_type, default=0, help="seed of the weights and the data split (default 0)")
    tr.add_argument("--quick", action="store_true", help="10 epochs")
    _add_training_options(tr)
    cluster_options(tr)
    tr.set_defaults(func=_potential_train)


def _add_evaluate(act) -> None:
    """Register ``potential evaluate``."""
    ev = act.add_parser("evaluate", help="energy and force errors of a model on a dataset",
                        description=_potential_evaluate.__doc__)
    ev.add_argument("model_file", type=input_file, help="a model written by 'train'")
    ev.add_argument("--data", required=True, type=input_file,
                    help="ase.db or extxyz with reference energies and forces")
    ev.add_argument("--plot", metavar="FILE", type=output_file, help="write a force parity plot")
    for kind in ("energy", "forces", "stress", "virials"):
        ev.add_argument(f"--{kind}-key", metavar="KEY", help=f"where records keep their {kind}")
    ev.set_defaults(func=_potential_evaluate)


def _add_validate(act) -> None:
    """Register ``potential validate``."""
    va = act.add_parser("validate", help="lattice constant, bulk modulus, elastic constants, vacancy and surface "
                                         "energies: the model beside a reference calculator")
    va.add_argument("model_file", help="a model written by 'train' (or a calculator name, e.g. emt)")
    va.add_argument("--reference", default="emt",
                    help="'emt' or an importable ASE calculator, e.g. ase.calculators.emt.EMT (default emt)")
    va.add_argument("--elements", nargs="+", help="fcc elements to validate (default: the model's)")
    va.add_argument("--plot", metavar="FILE", type=output_file, help="write E(V) and the relative differences to FILE")
    va.add_argument("--no-relax", action="store_true", help="vacancy and surfaces unrelaxed (faster)")
    va.add_argument("--no-surfaces", action="store_true", help="skip the surface energies")
    va.set_defaults(func=_potential_validate)


def _add_select(act) -> None:
    """Register ``potential select``."""
    se = act.add_parser("select", help="the frames of a trajectory where a committee disagrees most, for labelling")
    se.add_argument("model_file", help="a committee written by 'train --ensemble K'")
    se.add_argument("--trajectory", required=True, type=input_file, help="any file ase.io reads (.traj, .xyz)")
    se.add_argument("--n", type=count, default=10, help="how many frames (default 10)")
    se.add_argument("--min-separation", type=int, default=1, help="frames between two picks, at least (default 1)")
    se.add_argument("--threshold", type=float, help="only frames whose force spread passes this (eV/Å)")
    se.add_argument("--label", metavar="CALC", help="label the picks with this calculator (e.g. emt)")
    se.add_argument("--out", default="selected.xyz", type=output_file,
                    help="extxyz file to write (default selected.xyz)")
    se.set_defaults(func=_potential_select)


def _add_md(act) -> None:
    """Register ``potential md``."""
    md = act.add_parser("md", help="MD with a model (NVE, NVT or NPT), checked against EMT where EMT applies",
                        description=_potential_md.__doc__ + " Without --structure, a one-element model runs its "
                        "element's ASE reference crystal; a model of several elements needs --structure.")
    md.add_argument("model_file", type=input_file, help="a model written by 'train'")
    md.add_argument("--structure", metavar="FILE", type=input_file,
                    help="the starting structure: any file ASE reads (xyz, extxyz, cif, POSCAR, traj...; the last "
                         "frame of a multi-frame file)")
    md.add_argument("--ensemble", choices=["nve", "nvt", "npt"], default="nve",
                    help="nve: velocity Verlet (reports the energy drift, default); nvt: Langevin thermostat; "
                         "npt: Berendsen thermostat and barostat (needs a fully periodic structure)")
    md.add_argument("--temperature", type=positive, default=600.0,
                    help="initial (nve) or thermostat (nvt, npt) temperature in K (default 600)")
    md.add_argument("--pressure", type=number(float, least=0.0, what="a pressure ≥ 0"), default=1e-4,
                    help="npt: pressure in GPa (default 1e-4, one bar)")
    md.add_argument("--steps", type=count, default=2000, help="MD steps (default 2000)")
    md.add_argument("--timestep", type=positive, default=2.0, help="time step in fs (default 2)")
    md.add_argument("--size", type=count, default=3,
                    help="without --structure: the reference crystal's cubic cell repeated size³ times (default 3)")
    md.add_argument("--plot", metavar="FILE", type=output_file, help="write g(r), MSD and the energy to FILE")
    md.add_argument("--replicas", type=count, metavar="K",
                    help="K independent replicas per temperature (with the learned model only): ensemble g(r), "
                         "MSD, diffusion coefficient and drift with error bars")
    md.add_argument("--temperatures", metavar="T1,T2,...", help="with --replicas: temperatures in K (default "
                    "--temperature)")
    cluster_options(md)
    md.add_argument("--uncertainty", type=nonnegative_float, metavar="EV_PER_A",
                    help="committees: flag NVE steps whose force spread passes this (eV/Å)")
    md.add_argument("--stop-on-uncertainty", action="store_true", help="with --uncertainty: stop the run there")
    md.set_defaults(func=_potential_md)


def _potential_generate(args: argparse.Namespace) -> int:
    """EMT-labelled reference data (MD, rattled, strained, vacancies) to an ase.db or extxyz file."""
    from .reference_data import generate_emt_dataset

    quick = dict(temperatures=(300.0, 900.0), md_samples=10, rattled=5, strained=5, vacancies=5, eos=5) \
        if args.quick else dict(temperatures=tuple(args.temperatures), md_samples=args.md_samples, eos=args.eos)
    # on workers each task's rows are committed as it finishes, and a database left by an
    # interrupted run is resumed; a fresh run in one process makes the file appear only when complete
    import os
    import pathlib

    resume = bool(args.workers or args.scheduler or os.environ.get("DIFFSIM_SCHEDULER")) or \
        pathlib.Path(args.out).exists()
    with cluster_client(args) as client:
        n = generate_emt_dataset(args.out, args.element, size=(args.size,) * 3, seed=args.seed, client=client,
                                 resume=resume, vacancy_size=None if args.vacancy_size is None else
                                 (args.vacancy_size,) * 3, **quick)
    print(f"wrote {n} EMT-labelled {args.element} configurations to {args.out}")
    return 0


def _potential_train(args: argparse.Namespace) -> int:
    """Train a potential (or a committee with --ensemble K) on energies, forces and stress."""
    from .committee import members_folder, remove_members, train_committee
    from .figures import learning_curve
    from .model import ACSFModel
    from .painn import PaiNNModel
    from .reference_data import load_dataset
    from .training import train

    _distinct_paths(args, "data", "out", "checkpoint", "curve", "valid_file", "test_file")
    if (args.workers or args.scheduler) and args.ensemble < 2:
        raise UsageError("--workers/--scheduler train the members of a committee in parallel: add --ensemble K "
                         "(K >= 2); one model trains in one process")
    keys = _label_keys(args)
    frames = load_dataset(args.data, keys)
    valid = load_dataset(args.valid_file, keys) if args.valid_file else None
    test = load_dataset(args.test_file, keys) if args.test_file else None
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})

    def make(seed):
        if args.model == "painn":
            return PaiNNModel(elements, features=args.features, layers=args.layers, cutoff=args.cutoff, seed=seed)
        return ACSFModel(elements, hidden=tuple(args.hidden), seed=seed)

    config = _train_config(args, keys)
    if args.ensemble > 1:
        def report(k, h):
            print(f"committee member {k + 1}/{args.ensemble}: {len(h.train_loss)} epochs, {h.seconds:.1f} s")

        with cluster_client(args) as client:  # members as cluster tasks; finished ones kept beside --out
            model, histories = train_committee(make, frames, config, size=args.ensemble, validation=valid, test=test,
                                               progress=report, client=client,
                                               members_dir=members_folder(args.out))
    else:
        model = make(args.seed)
        histories = [train(model, frames, config, validation=valid, test=test)]
        h0 = histories[0]
        if h0.resumed_from:
            done = h0.resumed_from >= config.epochs or (h0.stopped_early and not h0.seconds)
            print(f"resumed {args.checkpoint} at epoch {h0.resumed_from} of {config.epochs}"
                  + ("; it had finished, so nothing was left to train" if done else ""))
    model.save(args.out)
    if args.ensemble > 1:
        remove_members(members_folder(args.out))  # the committee file now holds them
    _print_training(args, model, histories, len(frames))
    if args.curve:
        learning_curve(histories[0], args.curve)
        print(f"wrote {args.curve}")
    return 0


def _stage_two(given: float | None, stage_one: float, default: float) -> float:
    """A stage-two weight: as given, else 0 for a term switched off in stage one, else ``default``.

    >>> _stage_two(None, 0.0, 100.0), _stage_two(None, 5.0, 100.0), _stage_two(3.0, 0.0, 100.0)
    (0.0, 100.0, 3.0)
    """
    if given is not None:
        return given
    return 0.0 if stage_one == 0 else default

def _train_config(args: argparse.Namespace, keys):
    """The TrainConfig of ``potential train``'s options."""
    from .e0s import parse_e0s
    from .training import TrainConfig

    rate = args.learning_rate or (2e-3 if args.model == "painn" else 5e-3)
    return TrainConfig(epochs=10 if args.quick else args.epochs, batch_size=args.batch_size, learning_rate=rate,
                       seed=args.seed, checkpoint=args.checkpoint, optimizer=args.optimizer,
                       energy_weight=args.energy_weight, force_weight=args.forces_weight,
                       stress_weight=args.stress_weight, stage_two=args.stage_two if args.stage_two < 1 else None,
                       stage_two_energy_weight=_stage_two(args.stage_two_energy_weight, args.energy_weight, 1000.0),
                       stage_two_force_weight=_stage_two(args.stage_two_forces_weight, args.forces_weight, 1.0),
                       stage_two_stress_weight=_stage_two(args.stage_two_stress_weight, args.stress_weight, 100.0),
                       config_type_weights=_json_mapping(args.config_type_weights, "--config-type-weights"),
                       schedule=args.schedule, ema_decay=args.ema_decay or None, clip_norm=args.clip_norm or None,
                       validation_fraction=args.valid_fraction, keys=keys, max_seconds=args.max_seconds,
                       e0s=parse_e0s(args.E0s) if args.E0s else None, refit=False if args.no_refit else None)


def _print_training(args: argparse.Namespace, model, histories: list, structures: int) -> None:
    """What ``potential train`` did: the data, the time, the E0s, each member's error table."""
    history = histories[0]
    seconds = sum(h.seconds for h in histories)
    what = f"a committee of {args.ensemble}" if args.ensemble > 1 else "the model"
    reference = (model.members[0] if args.ensemble > 1 else model).reference
    counted = (f"{history.training_structures} structures ({history.validation_structures} more held out for "
               "validation)") if history.training_structures else f"{structures} structures"
    print(f"trained {what} on {counted} in {seconds:.1f} s; reference energies (E0s): "
          + ", ".join(f"{s} {e:.4f} eV" for s, e in reference.items()))
    for k, h in enumerate(histories):
        if args.ensemble > 1:
            print(f"member {k + 1}:")
        print(h.table())
    print(f"wrote {args.out}")


def _potential_evaluate(args: argparse.Namespace) -> int:
    """Energy, force and stress errors of a model on a dataset, per config_type."""
    from .model import load_model

    model = load_model(args.model_file)
    from .metrics import error_table, errors
    from .reference_data import load_dataset
    from .structures import prepare

    keys = _label_keys(args)
    frames = load_dataset(args.data, keys)
    table = {"data": errors(model, prepare(model, frames, keys, args.data))}
    row = table["data"].get("all", next(iter(table["data"].values())))
    print(f"{len(frames)} structures: energy MAE {row['energy_mae']:.2f} meV/atom, force MAE {row['forces_mae']:.1f} "
          "meV/Å")
    print(error_table(table))
    if args.plot:
        from .figures import force_parity, predicted_forces

        force_parity(*predicted_forces(model, frames), args.plot, title="held-out")
        print(f"wrote {args.plot}")
    return 0


def _potential_validate(args: argparse.Namespace) -> int:
    """The model's physical properties beside a reference calculator."""
    model = _model_or_calculator(args.model_file)
    from .validation import validate

    elements = args.elements or getattr(model, "symbols", None)
    if not elements:
        raise ValueError(f"{args.model_file} does not say which elements it covers: give --elements")
    result = validate(model, args.reference, elements=elements, relax=not args.no_relax,
                      surfaces=not args.no_surfaces)
    print(f"{args.model_file} beside {args.reference} (fcc; vacancy and surfaces "
          f"{'unrelaxed' if args.no_relax else 'relaxed'}):")
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0


def _potential_select(args: argparse.Namespace) -> int:
    """The frames of a trajectory where a committee disagrees most."""
    from .model import load_model

    model = load_model(args.model_file)
    from ase.io import read

    from diffsim.files import atomic_path

    from .committee import select_uncertain

    if not hasattr(model, "members"):
        raise ValueError(f"{args.model_file} is a single model; selecting by uncertainty needs a committee: "
                         "train one with 'diffsim potential train --ensemble K'")
    try:
        frames = read(args.trajectory, index=":")
    except FileNotFoundError:
        raise FileNotFoundError(f"{args.trajectory}: no such trajectory file") from None
    except Exception as exc:
        raise ValueError(f"{args.trajectory}: cannot read it as a trajectory ({type(exc).__name__}: {exc})") from exc
    picked, scores = select_uncertain(model, frames, args.n, min_separation=args.min_separation,
                                      threshold=args.threshold)
    print(f"{len(frames)} frames; force spread (max over atoms) from {scores.min():.3f} to {scores.max():.3f} eV/Å")
    for k in picked:
        print(f"  frame {k}: {scores[k]:.3f} eV/Å")
    chosen = []
    for k in picked:
        atoms = frames[k].copy()
        atoms.calc = None
        atoms.info["committee_force_std"] = float(scores[k])
        atoms.info["source_frame"] = int(k)
        chosen.append(atoms)
    if args.label:
        from .reference_data import label_frames
        from .validation import calculator_factory

        chosen = label_frames(chosen, calculator_factory(args.label))
    from ase.io import write

    with atomic_path(args.out) as tmp:
        write(tmp, chosen, format="extxyz")
    print(f"wrote {len(chosen)} frames to {args.out}" + (f", labelled by {args.label}" if args.label else
                                                         " (unlabelled: label them, then add them to the data)"))
    return 0


def _potential_md(args: argparse.Namespace) -> int:
    """Molecular dynamics with a model (NVE, NVT or NPT), checked against EMT where EMT applies."""
    from .md import md_report
    from .model import load_model

    model = load_model(args.model_file)
    atoms = _md_structure(args, model)
    if args.replicas:
        return _md_replicas(args, model, atoms)
    report = md_report(atoms, model, ensemble=args.ensemble, temperature_K=args.temperature, steps=args.steps,
                       timestep_fs=args.timestep, pressure_GPa=args.pressure, plot=args.plot, progress=True,
                       uncertainty_threshold=args.uncertainty, stop_on_uncertainty=args.stop_on_uncertainty)
    print(report["summary"])
    _report_uncertainty(report["run"], args)
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _md_structure(args: argparse.Namespace, model):
    """The structure ``potential md`` runs: --structure, or the default crystal of a one-element model."""
    if args.structure:
        from ase.io import read

        try:
            atoms = read(args.structure)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise UsageError(f"{args.structure}: not a structure ASE can read ({type(exc).__name__}: {exc}); give "
                             "an .xyz, .extxyz, .cif, POSCAR, .traj or another ASE format") from None
        if isinstance(atoms, list):
            atoms = atoms[-1]
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(model.symbols))
        if unknown:
            raise UsageError(f"{args.structure} has {', '.join(unknown)}, which the model does not know (it was "
                             f"trained on {', '.join(model.symbols)})")
        return atoms
    if len(model.symbols) > 1:
        raise UsageError(f"the model covers {len(model.symbols)} elements ({', '.join(model.symbols)}): give the "
                         "structure to run with --structure FILE (any file ASE reads, e.g. an extxyz from "
                         "'diffsim potential generate --element " + "".join(model.symbols) + " --out a.xyz')")
    from ase.build import bulk

    try:
        atoms = bulk(model.symbols[0], cubic=True)
    except Exception:
        try:
            atoms = bulk(model.symbols[0])
        except Exception:
            raise UsageError(f"ASE has no reference crystal for {model.symbols[0]}: give --structure FILE") from None
    return atoms.repeat((args.size,) * 3)


def _md_replicas(args: argparse.Namespace, model, atoms) -> int:
    """diffsim potential md --replicas K --temperatures ...: ensemble averages with error bars."""
    from .replicas import run_replicas

    try:
        temperatures = [float(t) for t in args.temperatures.split(",")] if args.temperatures else [args.temperature]
    except ValueError:
        raise ValueError(f"--temperatures takes kelvins separated by commas, e.g. 300,600,900; got "
                         f"{args.temperatures!r}") from None
    with cluster_client(args) as client:
        ens = run_replicas(model, atoms, temperatures, replicas=args.replicas, steps=args.steps,
                           seed=getattr(args, "seed", None) or 0, client=client)
    print(f"{len(atoms)} atoms, {args.replicas} replicas per temperature, {args.steps} steps of 2 fs "
          "(NVT for g(r), MSD and D; NVE for the drift); mean ± standard error:")
    print(ens.table())
    if args.plot:
        ens.plot(args.plot)


def _label_keys(args):
    from .labels import LabelKeys

    return LabelKeys(energy=args.energy_key, forces=args.forces_key, stress=args.stress_key, virials=args.virials_key)


def _json_mapping(text: str | None, option: str) -> dict | None:
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError):
        raise ValueError(f"{option} must be a JSON mapping such as '{{\"md\": 1.0, \"strain\": 5.0}}', "
                         f"got {text!r}") from None


def _model_or_calculator(spec: str):
    """A model file, or a calculator name ('emt', 'ase.calculators.emt.EMT') for validate."""
    import pathlib

    from .model import load_model

    if spec.endswith(".npz") or pathlib.Path(spec).exists():
        return load_model(spec)
    return spec


def _report_uncertainty(run, args) -> None:
    if run.uncertainty is None:
        return
    print(f"committee force spread during NVE: max {run.uncertainty.max():.3f} eV/Å")
    if args.uncertainty is not None:
        print(f"steps above {args.uncertainty} eV/Å: {len(run.flagged)}"
              + (f"; stopped at step {run.stopped_at}" if run.stopped_at is not None else ""))


def _add_training_options(tr) -> None:
    """The loss, data and schedule options of ``potential train``."""
    loss = tr.add_argument_group("loss")
    loss.add_argument("--energy-weight", type=float, default=100.0, help="on (eV/atom)² (default 100)")
    loss.add_argument("--forces-weight", type=float, default=10.0, help="on (eV/Å)² (default 10)")
    loss.add_argument("--stress-weight", type=float, default=100.0,
                      help="on (eV/Å³)², where the data has stress (default 100; 0: not trained)")
    loss.add_argument("--stage-two", type=float, default=0.75, metavar="FRACTION",
                      help="from this fraction of the epochs (or of --max-seconds) on, the stage-two weights: forces "
                           "lead, then energies are refined, as MACE's stage two (default 0.75; 1: one stage)")
    for term, default in (("energy", 1000.0), ("forces", 1.0), ("stress", 100.0)):
        loss.add_argument(f"--stage-two-{term}-weight", type=float, default=None,
                          help=f"(default {default:g}; 0 when --{term}-weight is 0: that term is then not trained)")
    loss.add_argument("--config-type-weights", metavar="JSON",
                      help="weights by the config_type in each record's info, e.g. '{\"md\": 1, \"strain\": 5}'")
    data = tr.add_argument_group("data")
    for kind in ("energy", "forces", "stress", "virials"):
        data.add_argument(f"--{kind}-key", metavar="KEY",
                          help=f"where records keep their {kind} (default: the calculator's results, then "
                               f"REF_{kind} and other common names)")
    data.add_argument("--valid-file", metavar="FILE", help="validation set (default: a random --valid-fraction)")
    data.add_argument("--valid-fraction", type=float, default=0.1, help="random validation fraction (default 0.1)")
    data.add_argument("--test-file", metavar="FILE", help="test set, scored at the end only")
    data.add_argument("--E0s", metavar="E0S",
                      help="reference energies: 'isolated' (isolated-atom frames in the data), 'fit' (least squares) "
                           "or a mapping '{\"Cu\": -0.007}' (default: isolated atoms if present, else fit)")
    sched = tr.add_argument_group("optimisation")
    sched.add_argument("--schedule", choices=["exponential", "cosine", "plateau"], default="exponential",
                       help="learning-rate schedule (default exponential)")
    sched.add_argument("--ema-decay", type=float, default=0.99, help="EMA of the weights (default 0.99; 0: off)")
    sched.add_argument("--clip-norm", type=float, default=10.0, help="gradient-norm clipping (default 10; 0: off)")
    sched.add_argument("--max-seconds", type=float, help="stop after this much training time")
    sched.add_argument("--no-refit", action="store_true",
                       help="skip the last step of ACSF training, the exact least-squares refit of the read-out on "
                            "energies, forces and stress (potentials.refit)")
    sched.add_argument("--ensemble", type=int, default=1, metavar="K",
                       help="train a committee of K models (seeds and splits differ), stored in one file")


def _distinct_paths(args: argparse.Namespace, *names: str) -> None:
    """Refuse one file given for two roles (the model would overwrite the dataset, say)."""
    import pathlib

    seen: dict = {}
    for name in names:
        value = getattr(args, name, None)
        if value:
            key = pathlib.Path(value).resolve()
            if key in seen:
                raise UsageError(f"--{seen[key]} and --{name} are the same file ({value}): give each its own path")
            seen[key] = name
