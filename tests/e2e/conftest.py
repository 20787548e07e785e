from pathlib import Path

import pytest

from distillguard.pipeline import ScanResult, scan
from distillguard.sim import simulate


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(scenario="mixed", seed=11, scale=0.2, out=out)
    return out


@pytest.fixture(scope="session")
def scanned(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ScanResult:
    out = tmp_path_factory.mktemp("scan")
    return scan(
        sorted(sim_dir.glob("logs*.jsonl*")),
        out,
        accounts=sim_dir / "accounts.csv",
        intel=sorted((sim_dir / "intel").glob("*.json")),
    )
