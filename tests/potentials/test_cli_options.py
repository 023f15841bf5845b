"""diffsim potential train's loss, data and committee options; select; md on the spread; and
the one-line messages for bad input."""

from ase.io import read, write

from diffsim.cli import main


def _ref_file(frames, path):
    out = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info["REF_energy"] = a.get_potential_energy()
        b.arrays["REF_forces"] = a.get_forces().copy()
        b.info["REF_stress"] = a.get_stress()
        out.append(b)
    write(path, out, format="extxyz")


def test_train_with_keys_files_e0s_and_a_committee_then_select_and_md(frames, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _ref_file(frames[:24], "train.xyz")
    _ref_file(frames[24:30], "valid.xyz")
    _ref_file(frames[30:], "test.xyz")
    assert main(["potential", "train", "--data", "train.xyz", "--valid-file", "valid.xyz", "--test-file", "test.xyz",
                 "--energy-key", "REF_energy", "--forces-key", "REF_forces", "--stress-key", "REF_stress",
                 "--E0s", '{"Cu": -0.01}', "--schedule", "cosine", "--ensemble", "2", "--epochs", "3",
                 "--hidden", "6", "--energy-weight", "50", "--stress-weight", "20",
                 "--config-type-weights", '{"md": 2.0}', "--out", "c.npz"]) == 0
    out = capsys.readouterr().out
    assert "committee of 2" in out and "Cu -0.0100 eV" in out
    assert out.count("test   all") == 2 and "valid" in out and "S MAE" in out
    write("traj.xyz", frames[:8], format="extxyz")
    assert main(["potential", "select", "c.npz", "--trajectory", "traj.xyz", "--n", "3", "--label", "emt",
                 "--out", "picked.xyz"]) == 0
    picked = read("picked.xyz", index=":")
    assert len(picked) == 3 and all("committee_force_std" in a.info for a in picked)
    assert abs(picked[0].get_potential_energy() - frames[picked[0].info["source_frame"]].get_potential_energy()) < 1e-6
    assert main(["potential", "md", "c.npz", "--steps", "10", "--size", "2", "--uncertainty", "0.0",
                 "--stop-on-uncertainty"]) == 0
    assert "stopped at step 0" in capsys.readouterr().out


def test_bad_input_is_one_line_naming_the_record_and_key(frames, tmp_path, capsys):
    data = tmp_path / "d.xyz"
    _ref_file(frames[:6], data)
    cases = [
        (["--energy-key", "E_dft"], "no record has energy under the key 'E_dft'"),
        (["--E0s", '{"Ni": -0.1, "Cu": 0.0}'], "E0s given for ['Ni'], which no structure contains"),
        (["--E0s", "Cu=1"], "cannot read E0s"),
        (["--config-type-weights", "[1]"], "--config-type-weights must be a JSON mapping"),
    ]
    for extra, message in cases:
        assert main(["potential", "train", "--data", str(data), "--epochs", "1", "--hidden", "4",
                     "--out", str(tmp_path / "m.npz")] + extra) == 2  # an input error: exit 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["potential", "train", "--data", str(data), "--epochs", "1", "--hidden", "4",
                 "--out", str(tmp_path / "m.npz")]) == 0
    capsys.readouterr()
    assert main(["potential", "select", str(tmp_path / "m.npz"), "--trajectory", str(data)]) == 2
    assert "needs a committee" in capsys.readouterr().err


def test_train_command_defaults_are_the_training_defaults(tmp_path):
    """What `diffsim potential train` uses without options is TrainConfig's own defaults (the API)."""
    from diffsim.cli import build_parser
    from potentials.training import TrainConfig

    data = tmp_path / "d.xyz"
    data.write_text("")
    from potentials.cli import _train_config
    from potentials.labels import LabelKeys

    args = build_parser().parse_args(["potential", "train", "--data", str(data)])
    cfg = TrainConfig()
    pairs = {"energy_weight": "energy_weight", "forces_weight": "force_weight", "stress_weight": "stress_weight",
             "schedule": "schedule", "ema_decay": "ema_decay", "clip_norm": "clip_norm", "epochs": "epochs",
             "batch_size": "batch_size", "valid_fraction": "validation_fraction", "stage_two": "stage_two"}
    assert {cli: getattr(args, cli) for cli in pairs} == {cli: getattr(cfg, api) for cli, api in pairs.items()}
    assert args.learning_rate is None  # then the model's: TrainConfig's for acsf
    built = _train_config(args, LabelKeys())
    for name in ("stage_two_energy_weight", "stage_two_force_weight", "stage_two_stress_weight"):
        assert getattr(built, name) == getattr(cfg, name), name


def test_a_weight_of_zero_switches_its_term_off_in_both_stages_unless_stage_two_is_given(tmp_path):
    """`--stress-weight 0` (help: "0: not trained") must not train stress from stage two on."""
    from diffsim.cli import build_parser
    from potentials.cli import _train_config
    from potentials.labels import LabelKeys

    data = tmp_path / "d.xyz"
    data.write_text("")
    parse = lambda *extra: _train_config(build_parser().parse_args(["potential", "train", "--data", str(data),  # noqa: E731
                                                                   *extra]), LabelKeys())
    off = parse("--stress-weight", "0", "--energy-weight", "0")
    assert off.stress_weight == off.stage_two_stress_weight == 0.0
    assert off.energy_weight == off.stage_two_energy_weight == 0.0 and off.stage_two_force_weight == 1.0
    assert parse("--stress-weight", "0", "--stage-two-stress-weight", "5").stage_two_stress_weight == 5.0


def test_no_refit_turns_the_readout_refit_off(tmp_path):
    from diffsim.cli import build_parser
    from potentials.cli import _train_config
    from potentials.labels import LabelKeys

    data = tmp_path / "d.xyz"
    data.write_text("")
    on, off = (_train_config(build_parser().parse_args(["potential", "train", "--data", str(data), *extra]),
                             LabelKeys()) for extra in ([], ["--no-refit"]))
    assert on.refit is None and off.refit is False  # None: on for ACSF models (potentials.refit)
