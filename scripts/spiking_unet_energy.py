"""The Spiking-UNet paper's energy table (its Table 5) for a finished run, by one command.

    .venv/bin/python scripts/spiking_unet_energy.py --run-dir runs/drive_spikingunet

Reads the run's results (its ANN and the spiking stages' measured firing rates on the
test split) and its networks, and prices one inference the paper's way (eq. 13: spikes
+ first-layer MACs, at 0.9 / 4.6 pJ on 45 nm), beside the synaptic operations the
spikes drive and the device figures (KerasSpiking: ANN on a GPU, SNN on Loihi); see
`nengoseg.paper_energy` for how each column is counted. Writes ``RUN/energy_table5.md``
(atomically) and prints it.
"""

import argparse
import sys
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a run folder of `nengoseg run`")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    from nengoseg import paper_energy
    from nengoseg.atomic import write_text

    run_dir = Path(args.run_dir)
    text = paper_energy.markdown(paper_energy.table5(run_dir))
    write_text(run_dir / "energy_table5.md", text)
    print(text)
    print(f"written: {run_dir / 'energy_table5.md'}")


if __name__ == "__main__":
    main()
