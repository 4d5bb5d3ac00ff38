"""Bad input to every subcommand: one line naming the culprit, exit 2, no traceback.

``FLAG_CASES`` are refused before any data is read and before JAX starts: the
loaders and the determinism set-up are replaced by functions that fail the test
if reached. ``DATA_CASES`` reach the data (a bad file, an empty run directory)
and are refused there, still in one line. ``test_table`` prints every case with
its exit status and its line (``pytest -s``).
"""

import argparse
import errno
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest

from jaxequiv import cli, rundir
from jaxequiv.lm import corpus

S = str(2**32)
# (case id, argv, a substring the one error line must hold: the flag, the file or the command)
FLAG_CASES = [
    # train: one flag at a time
    ("train steps 0", ["train", "--steps", "0"], "--steps: must be an integer >= 1"),
    ("train steps -5", ["train", "--steps", "-5"], "--steps"),
    ("train steps abc", ["train", "--steps", "abc"], "--steps"),
    ("train batch-size 0", ["train", "--batch-size", "0"], "--batch-size"),
    ("train lr nan", ["train", "--lr", "nan"], "--lr: must be a finite number > 0"),
    ("train lr 0", ["train", "--lr", "0"], "--lr"),
    ("train lr -1e-3", ["train", "--lr", "-1e-3"], "--lr"),
    ("train lr=-1e-3", ["train", "--lr=-1e-3"], "--lr: must be a finite number > 0"),
    ("train lr inf", ["train", "--lr", "inf"], "--lr"),
    ("train lr 1e400", ["train", "--lr", "1e400"], "--lr"),
    ("train warmup -1", ["train", "--warmup", "-1"], "--warmup: must be an integer >= 0"),
    ("train end-lr-fraction 1.5", ["train", "--end-lr-fraction", "1.5"], "--end-lr-fraction: must be a finite number in [0, 1]"),
    ("train end-lr-fraction -0.1", ["train", "--end-lr-fraction", "-0.1"], "--end-lr-fraction"),
    ("train weight-decay -0.01", ["train", "--weight-decay", "-0.01"], "--weight-decay"),
    ("train weight-decay nan", ["train", "--weight-decay", "nan"], "--weight-decay"),
    ("train clip-norm -1", ["train", "--clip-norm", "-1"], "--clip-norm: must be a finite number >= 0 (0: off)"),
    ("train clip-norm nan", ["train", "--clip-norm", "nan"], "--clip-norm"),
    ("train b1 1.5", ["train", "--b1", "1.5"], "--b1: must be a finite number in [0, 1)"),
    ("train b1 1", ["train", "--b1", "1"], "--b1"),
    ("train b1 -0.1", ["train", "--b1", "-0.1"], "--b1"),
    ("train b2 1", ["train", "--b2", "1"], "--b2"),
    ("train b2 nan", ["train", "--b2", "nan"], "--b2"),
    ("train seed -1", ["train", "--seed", "-1"], f"--seed: must be an integer in [0, {2**32 - 1}]"),
    ("train seed 2^32", ["train", "--seed", S], "--seed"),
    ("train seq-len 1", ["train", "--seq-len", "1"], "--seq-len: must be an integer >= 2"),
    ("train seq-len 0", ["train", "--seq-len", "0"], "--seq-len"),
    ("train layers 0", ["train", "--layers", "0"], "--layers"),
    ("train width 0", ["train", "--width", "0"], "--width"),
    ("train heads 0", ["train", "--heads", "0"], "--heads"),
    ("train heads 3", ["train", "--heads", "3"], "--heads: must divide --width 128"),
    ("train mlp-ratio 0", ["train", "--mlp-ratio", "0"], "--mlp-ratio"),
    ("train val-fraction 1", ["train", "--val-fraction", "1.0"], "--val-fraction: must be a finite number in [0, 1)"),
    ("train val-fraction -0.1", ["train", "--val-fraction", "-0.1"], "--val-fraction"),
    ("train num-synthetic 0", ["train", "--num-synthetic", "0"], "--num-synthetic"),
    ("train eval-every -1", ["train", "--eval-every", "-1"], "--eval-every"),
    ("train checkpoint-every -1", ["train", "--checkpoint-every", "-1"], "--checkpoint-every"),
    ("train log-every 0", ["train", "--log-every", "0"], "--log-every"),
    ("train max-steps-this-run 0", ["train", "--max-steps-this-run", "0"], "--max-steps-this-run"),
    ("train num-samples -1", ["train", "--num-samples", "-1"], "--num-samples"),
    ("train max-examples -1", ["train", "--max-examples", "-1"], "--max-examples"),
    ("train objective", ["train", "--objective", "gan"], "--objective: invalid choice"),
    ("train mode", ["train", "--mode", "bar"], "--mode"),
    ("train dtype", ["train", "--dtype", "float16"], "--dtype"),
    ("train activation", ["train", "--activation", "swish"], "--activation"),
    ("train data missing file", ["train", "--data", "no/such/corpus.txt"], "--data: unknown corpus spec"),
    ("train data tfds:", ["train", "--data", "tfds:"], "--data: corpus spec 'tfds:' names no dataset"),
    ("train max-examples builtin", ["train", "--max-examples", "5"], "--max-examples and --data-dir apply to"),
    ("train out is a file", ["train", "--out", __file__], "--out"),
    ("train unknown flag", ["train", "--nope"], "unrecognized arguments: --nope"),
    # sizes that cannot fit in any machine's memory (jaxequiv.limits): refused with the estimate, before any data
    ("train batch-size huge", ["train", "--batch-size", "10000000000"], "--batch-size 10000000000 x --seq-len 64"),
    ("train seq-len huge", ["train", "--seq-len", "10000000"], "--seq-len 10000000 at --width 128"),
    ("train width huge", ["train", "--width", "1000000", "--heads", "4"], "--width 1000000 x --layers 2"),
    ("train layers huge", ["train", "--layers", "10000000000"], "--layers 10000000000 needs about"),
    ("train heads huge", ["train", "--width", "65536", "--heads", "65536", "--seq-len", "65536"], "GiB for activations"),
    ("train iid rows huge", ["train", "--objective", "classification", "--mode", "iid", "--batch-size", "100000",
                             "--seq-len", "4096"], "(--mode iid: 409600000 rows)"),
    # sample
    ("sample num-samples 0", ["sample", "--checkpoint", ".", "--num-samples", "0"], "--num-samples"),
    ("sample temperature -1", ["sample", "--checkpoint", ".", "--temperature", "-1"], "--temperature: must be a finite number >= 0"),
    ("sample temperature nan", ["sample", "--checkpoint", ".", "--temperature", "nan"], "--temperature"),
    ("sample top-k 0", ["sample", "--checkpoint", ".", "--top-k", "0"], "--top-k: top_k must be None or an int in [1, 64]"),
    ("sample top-k 65", ["sample", "--checkpoint", ".", "--top-k", "65"], "--top-k"),
    ("sample max-len 0", ["sample", "--checkpoint", ".", "--max-len", "0"], "--max-len"),
    ("sample step -1", ["sample", "--checkpoint", ".", "--step", "-1"], "--step"),
    ("sample seed -1", ["sample", "--checkpoint", ".", "--seed", "-1"], "--seed"),
    ("sample no checkpoint flag", ["sample"], "required: --checkpoint"),
    ("sample checkpoint missing", ["sample", "--checkpoint", "no/such/run"], "--checkpoint: no/such/run/config.json not found"),
    # labels
    ("labels steps 0", ["labels", "--steps", "0"], "--steps: must be an integer >= 1"),
    ("labels batch-size 0", ["labels", "--batch-size", "0"], "--batch-size"),
    ("labels lr nan", ["labels", "--lr", "nan"], "--lr"),
    ("labels beam-size 0", ["labels", "--beam-size", "0"], "--beam-size"),
    ("labels token-dropout 1", ["labels", "--token-dropout", "1"], "--token-dropout: must be a finite number in [0, 1)"),
    ("labels token-dropout -0.5", ["labels", "--token-dropout", "-0.5"], "--token-dropout"),
    ("labels num-train 0", ["labels", "--num-train", "0"], "--num-train"),
    ("labels num-test 0", ["labels", "--num-test", "0"], "--num-test"),
    ("labels heads 3", ["labels", "--heads", "3"], "--heads: must divide --width 64"),
    ("labels channels 16,0", ["labels", "--channels", "16,0"], "--channels: must be comma-separated integers >= 1"),
    ("labels channels a,b", ["labels", "--channels", "a,b"], "--channels"),
    ("labels patch 0", ["labels", "--patch", "0"], "--patch"),
    ("labels vit patch 5", ["labels", "--encoder", "vit", "--patch", "5"], "--patch: must divide the image side 16"),
    ("labels image-size 4", ["labels", "--image-size", "4"], "--image-size: must be >= 8 for --data shapes"),
    ("labels zero-shot digits", ["labels", "--data", "digits", "--zero-shot"], "--zero-shot: needs --data shapes"),
    ("labels data mnist", ["labels", "--data", "mnist"], "--data: unknown image data 'mnist'"),
    ("labels data tfds:svhn", ["labels", "--data", "tfds:svhn"], "--data: tfds:svhn is not supported"),
    ("labels data bad slice", ["labels", "--data", "tfds:cifar10:a,b,c"], "--data: tfds:cifar10:a,b,c: the split part"),
    ("labels data-dir shapes", ["labels", "--data-dir", "/tmp"], "--data-dir and --download apply to --data tfds:*"),
    ("labels class-names missing", ["labels", "--class-names", "no/such/names.txt"], "--class-names: cannot read"),
    ("labels encoder", ["labels", "--encoder", "transformer"], "--encoder"),
    ("labels num-train huge", ["labels", "--num-train", "10000000000"], "--num-train 10000000000 + --num-test unset"),
    ("labels num-test huge", ["labels", "--num-test", "10000000000", "--image-size", "64"], "--num-test 10000000000"),
    ("labels image-size huge", ["labels", "--image-size", "1000000"], "images of 1000000x1000000 pixels"),
    ("labels batch-size huge", ["labels", "--batch-size", "10000000000"], "--batch-size 10000000000 x --width 64"),
    ("labels class-names /dev/zero", ["labels", "--class-names", "/dev/zero"],
     "--class-names: '/dev/zero' is a character device, not a regular file"),
    ("labels class-names a directory", ["labels", "--class-names", "."], "'.' is a directory, not a regular file"),
    # verify
    ("verify steps 0", ["verify", "--steps", "0"], "--steps: must be an integer >= 1"),
    ("verify repeats 0", ["verify", "--repeats", "0"], "--repeats"),
    ("verify sentences 0", ["verify", "--sentences", "0"], "--sentences"),
    ("verify heads 3", ["verify", "--heads", "3"], "--heads: must divide --width 64"),
    ("verify seq-len 1", ["verify", "--seq-len", "1"], "--seq-len"),
    ("verify layers 0", ["verify", "--layers", "0"], "--layers"),
    ("verify width -4", ["verify", "--width", "-4"], "--width"),
    ("verify seed -1", ["verify", "--seed", "-1"], "--seed"),
    ("verify activation", ["verify", "--activation", "swish"], "--activation"),
    ("verify seq-len huge", ["verify", "--seq-len", "10000000"], "--sentences 16 x --seq-len 10000000"),
    ("verify width huge", ["verify", "--width", "1000000", "--heads", "1"], "--width 1000000 x --layers 2"),
    ("verify sentences huge", ["verify", "--sentences", "10000000000"], "--sentences 10000000000 x --seq-len"),
    # compare
    ("compare no runs", ["compare"], "the following arguments are required: RUN_A, RUN_B"),
    ("compare one run", ["compare", "runs/a"], "required: RUN_B"),
    ("compare step -1", ["compare", "runs/a", "runs/b", "--step", "-1"], "--step: must be an integer >= 0"),
    # top level
    ("unknown command", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("no command", [], "required: {verify,train,sample,compare,labels}"),
]


def _main(argv):
  """``cli.main(argv)`` -> (exit status, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with redirect_stdout(out), redirect_stderr(err):
    rc = cli.main(argv)
  return rc, out.getvalue(), err.getvalue()


def _check_one_line(rc, err, needle):
  lines = err.strip().splitlines()
  assert rc == 2 and "Traceback" not in err and len(lines) == 1, (rc, err)
  assert lines[0].startswith("jaxequiv") and ": error: " in lines[0], lines[0]
  assert needle in lines[0], (needle, lines[0])
  return lines[0]


@pytest.fixture
def no_data(monkeypatch):
  """Fails the test if a case gets past the flag checks (to JAX, the data or the checks)."""
  from jaxequiv import verify
  from jaxequiv.cli import sample as cli_sample
  from jaxequiv.labels import experiment, images
  from jaxequiv.lm import corpus

  def reached(*args, **kwargs):
    raise AssertionError("a bad flag got past the checks")

  monkeypatch.setattr(cli, "set_determinism_flags", reached)
  for module, name in [(corpus, "load_sentences"), (images, "load_images"), (experiment, "run_experiment"),
                       (verify, "run_checks"), (cli_sample, "load_params")]:
    monkeypatch.setattr(module, name, reached)


@pytest.mark.parametrize("case,argv,needle", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flag_is_one_line_before_any_data(no_data, case, argv, needle):
  del case
  rc, out, err = _main(argv)
  _check_one_line(rc, err, needle)
  assert out == ""


@pytest.fixture
def data_cases(tmp_path):
  """(case id, argv, needle) whose error comes from reading the data; files written under tmp_path."""
  binary, latin, empty, one = (tmp_path / n for n in ("binary.bin", "latin.txt", "empty.txt", "one.txt"))
  binary.write_bytes(bytes(range(256)) * 4)
  latin.write_bytes("Caf\u00e9 au lait. Il fait beau.".encode("latin-1"))
  empty.write_text("")
  one.write_text("Only one sentence here.")
  (tmp_path / "emptyrun").mkdir()
  names = tmp_path / "names.txt"
  names.write_text("\n# nothing but a comment\n")
  fifo = tmp_path / "names.fifo"
  os.mkfifo(fifo)  # reading it would block until a writer comes
  big = tmp_path / "big.txt"
  with open(big, "wb") as f:  # sparse: 1 GiB + 1 byte on paper, nothing on the disk
    f.truncate(corpus.MAX_TEXT_FILE_BYTES + 1)
  rundir.write_config(str(tmp_path / "cfgrun"), {"model": {"seq_len": 64, "width": 128, "num_layers": 2}})
  base = ["--no-determinism-flags", "--out", str(tmp_path / "run")]
  return [
      ("train data binary", ["train", "--data", str(binary), *base], f"{str(binary)!r} is not a text file"),
      ("train data latin-1", ["train", "--data", str(latin), *base], f"{str(latin)!r} is not utf-8 text: byte 0xe9"),
      ("train data empty", ["train", "--data", str(empty), *base], f"corpus {str(empty)!r} gave no sentences"),
      ("train data one sentence", ["train", "--data", str(one), *base], "gave 1 train and 0 validation"),
      ("sample empty run dir", ["sample", "--no-determinism-flags", "--checkpoint", str(tmp_path / "emptyrun")],
       "emptyrun"),
      ("compare missing run", ["compare", str(tmp_path / "emptyrun"), str(tmp_path / "nope")],
       "nope' is not a directory"),
      ("compare not a run", ["compare", str(tmp_path / "emptyrun"), str(tmp_path / "emptyrun")],
       "emptyrun/config.json not found"),
      ("labels class-names empty", ["labels", "--no-determinism-flags", "--class-names", str(names)],
       "holds no class names"),
      ("labels class-names FIFO", ["labels", "--no-determinism-flags", "--class-names", str(fifo)],
       "is a FIFO (named pipe), not a regular file"),
      ("train data FIFO", ["train", "--data", str(fifo), *base], "is a FIFO (named pipe), not a regular file"),
      ("train data /dev/zero", ["train", "--data", "/dev/zero", *base], "'/dev/zero' is a character device"),
      ("train data over 1 GiB", ["train", "--data", str(big), *base],
       "has 1,073,741,825 bytes, more than the 1,073,741,824 (1 GiB) this reads"),
      ("sample num-samples huge", ["sample", "--no-determinism-flags", "--checkpoint", str(tmp_path / "cfgrun"),
                                   "--num-samples", "10000000000"], "--num-samples 10000000000 x the run's context"),
  ]


def test_bad_data_is_one_line(data_cases):
  for case, argv, needle in data_cases:
    rc, _, err = _main(argv)
    print(f"{case}: {rc}: {err.strip()}")
    _check_one_line(rc, err, needle)


def test_genuine_bugs_keep_their_traceback(monkeypatch):
  from jaxequiv.cli import verify as cli_verify

  def buggy(args):
    raise KeyError("a bug, not bad input")

  monkeypatch.setattr(cli_verify, "run", buggy)
  with pytest.raises(KeyError):
    cli.main(["verify"])
  assert cli.is_user_error(ValueError("x")) and cli.is_user_error(FileNotFoundError("x"))
  assert cli.is_user_error(ImportError("needs it: pip install 'jaxequiv[tfds]'"))
  assert not cli.is_user_error(ImportError("cannot import name 'x'")) and not cli.is_user_error(TypeError("x"))
  monkeypatch.setenv("JAXEQUIV_DEBUG", "1")
  monkeypatch.setattr(cli_verify, "run", lambda args: (_ for _ in ()).throw(ValueError("shown with traceback")))
  with pytest.raises(ValueError, match="shown with traceback"):
    cli.main(["verify"])


def test_validators_accept_the_edges_of_their_ranges():
  assert cli.positive_int("1") == 1 and cli.nonnegative_int("0") == 0 and cli.seed_int(str(2**32 - 1)) == 2**32 - 1
  assert cli.unit_interval("0") == 0.0 and cli.unit_interval("1") == 1.0
  assert cli.finite_float(0.0, 1.0, hi_open=True)("0.999") == 0.999 and cli.positive_float("1e-12") == 1e-12
  assert cli.int_list("16,32") == (16, 32)
  for parse, text in [(cli.positive_float, "0"), (cli.unit_interval, "-inf"), (cli.int_range(2), "1.5")]:
    with pytest.raises(argparse.ArgumentTypeError):
      parse(text)


def test_help_and_version_still_exit_0(capsys):
  for argv in (["train", "--help"], ["labels", "--help"], ["--version"]):
    with pytest.raises(SystemExit) as e:
      cli.main(argv)
    assert e.value.code == 0
  assert "jaxequiv" in capsys.readouterr().out


def test_subprocess_exit_status_is_2_and_one_line():
  proc = subprocess.run([sys.executable, "-m", "jaxequiv", "train", "--clip-norm", "-1"], capture_output=True,
                        text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
  assert proc.returncode == 2 and proc.stdout == ""
  _check_one_line(proc.returncode, proc.stderr, "--clip-norm")


def test_table(data_cases):
  """Every case, its exit status and its line (``pytest -s``); counts tracebacks and accepted cases."""
  rows, tracebacks, accepted = [], 0, 0
  for case, argv, _ in FLAG_CASES + data_cases:
    try:
      rc, _, err = _main(argv)
    except Exception as e:  # pylint: disable=broad-except
      rc, err = "raised", f"Traceback: {type(e).__name__}: {e}"
    tracebacks += "Traceback" in err
    accepted += rc == 0
    rows.append(f"| {case} | {rc} | {err.strip().splitlines()[0] if err.strip() else ''} |")
  print("\n| case | exit | stderr |\n|---|---|---|\n" + "\n".join(rows))
  print(f"{len(rows)} bad-input cases: {sum(r.split(' | ')[1] == '2' for r in rows)} exit 2 with one line,"
        f" {tracebacks} tracebacks, {accepted} accepted")
  assert len(rows) >= 72 and tracebacks == 0 and accepted == 0


class _Stop(ValueError):
  """Ends a command at its first data access (a ValueError, so main prints it and returns 2)."""


@pytest.mark.parametrize("argv", [
    ["train", "--data", "synthetic"],
    ["sample", "--checkpoint", "."],
    ["labels", "--data", "shapes"],
    ["verify"],
])
@pytest.mark.parametrize("off", [False, True])
def test_every_command_sets_determinism_flags_before_touching_data(monkeypatch, tmp_path, argv, off):
  from jaxequiv import determinism, rundir, verify
  from jaxequiv.cli import sample as cli_sample
  from jaxequiv.labels import experiment
  from jaxequiv.lm import corpus
  events = []
  monkeypatch.setattr(determinism, "ensure_xla_flags", lambda: events.append("flags") or [])

  def data(*args, **kwargs):
    events.append("data")
    raise _Stop("stopped at the data")

  for module, name in [(corpus, "load_sentences"), (experiment, "run_experiment"), (verify, "run_checks"),
                       (cli_sample, "load_params")]:
    monkeypatch.setattr(module, name, data)
  if argv[0] == "sample":  # a run directory's config.json (sample checks --prompt against its T first)
    rundir.write_config(str(tmp_path), {"model": {"seq_len": 16}})
    argv = ["sample", "--checkpoint", str(tmp_path)]
  rc, _, err = _main(argv + ["--no-determinism-flags"] * off + (["--out", "/nonexistent/run"] if argv[0] == "train" else []))
  assert rc == 2 and "stopped at the data" in err, err
  assert events == (["data"] if off else ["flags", "data"])


def test_labels_class_names_file_renames_the_classes(tmp_path, monkeypatch):
  from jaxequiv.labels import images
  names = tmp_path / "names.txt"
  names.write_text("# one per line, label order\n" + "\n".join(f"thing {i}" for i in range(16)) + "\n")
  argv = ["labels", "--data", "shapes", "--steps", "1", "--batch-size", "8", "--num-train", "16", "--num-test", "16",
          "--width", "32", "--heads", "2", "--channels", "8,16", "--beam-size", "3", "--no-determinism-flags",
          "--class-names", str(names)]
  seen, real = [], images.load_images
  monkeypatch.setattr(images, "load_images", lambda *a, **kw: seen.append(real(*a, **kw).class_names) or real(*a, **kw))
  rc, out, err = _main(argv)
  assert rc == 0, err
  assert "K=16" in out and seen and all(names == [f"thing {i}." for i in range(16)] for names in seen)


def test_train_non_finite_loss_is_one_line_and_exit_1(tmp_path, monkeypatch):
  from jaxequiv.lm import train as tr
  from jaxequiv.training import NonFiniteLossError

  def diverges(*args, **kwargs):
    raise NonFiniteLossError("loss is nan at step 5; the last good checkpoint is step 4 in run/checkpoints")

  monkeypatch.setattr(tr, "train", diverges)
  rc, _, err = _main(["train", "--data", "synthetic", "--num-synthetic", "50", "--seq-len", "32",
                      "--no-determinism-flags", "--out", str(tmp_path / "run")])
  lines = err.strip().splitlines()
  assert rc == 1 and "Traceback" not in err
  assert lines[-1] == ("jaxequiv train: error: loss is nan at step 5; the last good checkpoint is step 4 in"
                       " run/checkpoints")


@pytest.mark.parametrize("code,what", [(errno.ENOSPC, "no space left on the device (ENOSPC)"),
                                       (errno.EROFS, "the file system is read-only (EROFS)")])
@pytest.mark.parametrize("raised", ["OSError", "wrapped", "tensorstore"])
def test_full_or_read_only_disk_is_one_line(tmp_path, monkeypatch, caplog, code, what, raised):
  """A write failing with ENOSPC/EROFS (also raised from inside a library that wraps it, or TensorStore's ValueError
  under orbax) -> one line naming the path, exit status 1; train names the run directory's checkpoint state. The
  tracebacks orbax's threads log through absl for it are dropped."""
  import logging
  from jaxequiv.lm import experiment
  path = str(tmp_path / "run" / "metrics.jsonl")

  def write_fails(config):
    error = OSError(code, os.strerror(code), path)
    if raised == "tensorstore":
      error = ValueError(f'RESOURCE_EXHAUSTED: Error writing local file "{path}": Failed to write 41 bytes to file 16:'
                         f" {os.strerror(code)} [os_error_code='{code}']")
    logging.getLogger("absl").error("a writer thread raised", exc_info=error)
    if raised == "wrapped":
      raise RuntimeError("a library's wrapper") from error
    raise error

  monkeypatch.setattr(experiment, "run", write_fails)
  with caplog.at_level(logging.ERROR):
    rc, out, err = _main(["train", "--data", "synthetic", "--no-determinism-flags", "--out", str(tmp_path / "run")])
    logging.getLogger("absl").error("a writer thread raised late", exc_info=OSError(code, os.strerror(code), path))
  assert "a writer thread raised" not in caplog.text  # also after main returned (orbax's threads log late)
  assert rc == 1 and out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  assert err.strip() == (f"jaxequiv train: error: cannot write {path!r}: {what};"
                         f" no good checkpoint in {tmp_path / 'run'}")


def test_full_disk_during_training_names_the_last_good_checkpoint(tmp_path, monkeypatch):
  """A real run checkpoints step 2, then its resume hits a full disk at the next checkpoint: one line naming step 2."""
  from jaxequiv import checkpoint
  out = str(tmp_path / "run")
  argv = ["train", "--data", "synthetic", "--num-synthetic", "64", "--seq-len", "32", "--width", "16", "--heads", "2",
          "--layers", "1", "--batch-size", "4", "--steps", "4", "--checkpoint-every", "2", "--eval-every", "0",
          "--num-samples", "0", "--no-progress", "--no-determinism-flags", "--out", out]
  rc, _, err = _main(argv + ["--max-steps-this-run", "2"])
  assert rc == 0, err
  real_save = checkpoint.save

  def disk_full(run_dir, step, *args, **kwargs):
    if step > 2:
      raise OSError(errno.ENOSPC, "No space left on device", os.path.join(run_dir, "checkpoints", str(step)))
    return real_save(run_dir, step, *args, **kwargs)

  monkeypatch.setattr(checkpoint, "save", disk_full)
  rc, _, err = _main(argv + ["--resume"])
  lines = err.strip().splitlines()
  assert rc == 1 and "Traceback" not in err, err
  assert lines[-1] == (f"jaxequiv train: error: cannot write {os.path.join(out, 'checkpoints', '4')!r}: no space left"
                       f" on the device (ENOSPC); the last good checkpoint is step 2 in {out}; resume with:"
                       f" python -m jaxequiv train --resume --out {out}"), lines[-1]


def test_ctrl_c_outside_the_training_loop_is_one_line_and_exit_130(tmp_path, monkeypatch):
  """Ctrl-C while the data loads or the step compiles (the loop's own handler is not installed yet)."""
  from jaxequiv.lm import experiment

  def interrupted(config):
    raise KeyboardInterrupt

  monkeypatch.setattr(experiment, "run", interrupted)
  rc, out, err = _main(["train", "--data", "synthetic", "--no-determinism-flags", "--out", str(tmp_path / "run")])
  assert rc == 130 and out == "" and "Traceback" not in err, err
  assert err.strip() == f"jaxequiv train: stopped by SIGINT; no good checkpoint in {tmp_path / 'run'}"


SIGTERM_OUTSIDE_THE_LOOP = """
import os, signal, sys, time
from jaxequiv import cli
from jaxequiv.lm import experiment
experiment.run = lambda config: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(60))
sys.exit(cli.main(["train", "--data", "synthetic", "--no-determinism-flags", "--out", sys.argv[1]]))
"""


def test_sigterm_outside_the_training_loop_is_one_line_and_exit_143(tmp_path):
  out = str(tmp_path / "run")
  proc = subprocess.run([sys.executable, "-c", SIGTERM_OUTSIDE_THE_LOOP, out], capture_output=True, text=True,
                        timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))
  assert proc.returncode == 143 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == f"jaxequiv train: stopped by SIGTERM; no good checkpoint in {out}"


HELP_WITHOUT_JAX = """
import sys
from jaxequiv import cli
try:
  cli.main([sys.argv[1], "--help"])
except SystemExit as e:
  assert e.code == 0, e.code
print(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "orbax")))
"""


# train and verify read their flags' defaults from jaxequiv.configs and jaxequiv.lm.configs (no JAX).
@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_help_imports_no_jax(command):
  """``--help`` prints the flags without starting JAX (the modules are imported only when a command runs)."""
  proc = subprocess.run([sys.executable, "-c", HELP_WITHOUT_JAX, command], capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "--help" in proc.stdout
  assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout.strip().splitlines()[-1][:500]


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_flag_has_a_help_text_that_states_its_default_once(command):
  """No flag without help; ``(default: X)`` at most once (argparse's appended one is skipped when the help says it)."""
  parser = cli.build_parser(command)
  sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
  formatter = sub._get_formatter()
  for action in sub._actions:
    if isinstance(action, argparse._HelpAction):
      continue
    name = "/".join(action.option_strings) or action.dest
    assert action.help, f"{command} {name} has no help text"
    text = formatter._expand_help(action)
    assert text.count("(default:") <= 1 and "(default: None)" not in text, f"{command} {name}: {text!r}"
