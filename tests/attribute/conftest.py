import sys
from pathlib import Path

# The labelled world of the linking tests is shared with attribution.
sys.path.insert(0, str(Path(__file__).parents[1] / "link"))
