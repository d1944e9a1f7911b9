"""examples/pipeline.ipynb runs top to bottom (small settings), so it cannot rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "pipeline.ipynb"

# the default config, made tiny: a few subjects, small slices, a small U-Net, few
# epochs and steps; every stage (ANN, conversion, co-training, Loihi emulator,
# report, segmenting a volume) still runs for real
SMALL = [
    "data.max_subjects=6", "data.size=[24, 24]", "data.test_fraction=0.34",
    "data.val_fraction=0.17",
    "model.options={filters: 4, depth: 2, dropout: 0.0}",
    "train.epochs=2", "train.batch_size=16",
    "convert.n_steps=12", "convert.readout_steps=6",
    "cotrain.epochs=1", "cotrain.max_train_examples=16", "cotrain.batch_size=8",
    "evaluate.max_subjects=1", "evaluate.calibration_examples=32",
    "loihi.n_images=2",
]


def test_notebook_runs_with_small_settings(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "CONFIG" in first.source and "OVERRIDES" in first.source  # the parameters cell
    config = NOTEBOOK.parent.parent / "configs" / "default.yaml"
    first.source = (f"CONFIG = {str(config)!r}\nRUN_DIR = {str(tmp_path / 'run')!r}\n"
                    f"OVERRIDES = {SMALL!r}\n")
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    run = tmp_path / "run"
    for stage in ("ann", "snn", "hybrid", "loihi"):
        assert (run / stage).is_dir(), stage
    assert (run / "report.md").read_text().count("| Loihi") == 1
    assert list(run.glob("*_mask.nii.gz"))


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
