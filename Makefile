# Two entry points: `make study` runs the embedded default study, `make test` the tests.
# Both create .venv and install the locked dependencies first; both are idempotent.
#
# Install: torch from pip (its CPU wheel lies on local disk here), every other version pinned in
# requirements.lock with uv (140 packages in 7 s against 91 s for pip's resolve-and-install), then
# this project with --no-deps; where uv cannot reach the index (it ignores pip.conf), pip installs
# the same lock. Everything is compiled to bytecode up front, on both cores: where
# PYTHONDONTWRITEBYTECODE is set (it is on this project's machines), Python never caches what it
# compiles, and every stage process would recompile torch, transformers, DVC and this package
# (measured: make test 18.3 minutes without the .pyc files, most of it in the tests' subprocesses).
# `compile` refreshes this package's own .pyc files before each study or test run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := 2.13.0
UV := 0.13.8
DVC := PATH="$(abspath $(BIN)):$$PATH" $(abspath $(BIN))/dvc

SMOKE := build/smoke
SMOKE_CACHE ?= $(abspath .dvc/cache)
.PHONY: study smoke test setup compile lock remote
setup: $(STAMP)

compile: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 proxyrank stages tests >/dev/null

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-compile torch==$(TORCH) uv==$(UV)
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch" >/dev/null 2>&1 \
	  || true  # torch ships a file in Python 3.12 syntax, which fails here as under pip (pip ignores it)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock \
	  || $(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e . \
	  || $(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

study: compile
	$(BIN)/python -m proxyrank check
	$(DVC) repro
	$(DVC) status

# The whole pipeline on profiles/smoke.yaml (six recipes, nano models, three PyPI sources) in its own
# checkout under build/smoke, sharing this checkout's DVC cache (SMOKE_CACHE): a run again restores
# from the run-cache.
smoke: compile
	rm -rf $(SMOKE) && mkdir -p $(SMOKE)/.dvc $(SMOKE)/reports
	cp -r proxyrank stages profiles dvc.yaml .dvcignore .gitignore $(SMOKE)/ && cp reports/ladder.csv $(SMOKE)/reports/
	cp .dvc/config .dvc/plots_page.html $(SMOKE)/.dvc/
	$(BIN)/python -m proxyrank profile profiles/smoke.yaml --out $(SMOKE)/params.yaml
	cd $(SMOKE) && git init -q && git add -A && git -c user.name=smoke -c user.email=smoke@localhost commit -qm smoke
	cd $(SMOKE) && $(DVC) cache dir --local "$(SMOKE_CACHE)" && $(abspath $(BIN))/python -m proxyrank check
	cd $(SMOKE) && $(DVC) repro
	@echo "smoke study done: $(SMOKE)/reports/report.md, and (cd $(SMOKE) && dvc metrics show)"

# two workers, one per core, each taking whole test files: one builds the shared smoke study while
# the other runs the unit tests (tests/conftest.py, tests/studies.py)
test: compile
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Rewrites requirements.lock from pyproject.toml: a clean venv resolved by pip (torch from its
# local CPU wheel), frozen without torch and this project, which `setup` installs on their own.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q --disable-pip-version-check --no-compile torch==$(TORCH)
	.lockenv/bin/pip install -q --disable-pip-version-check '.[test]'
	{ echo "# every installed version but torch ($(TORCH), Makefile) and proxyrank; written by make lock"; \
	  .lockenv/bin/pip freeze --exclude-editable | grep -v -i -E '^(torch|proxyrank)( @|==)'; } > requirements.lock
	rm -rf .lockenv build

# A team's shared DVC remote, as the default: make remote URL=ssh://host/srv/proxyrank (or a
# folder, or s3://bucket/path with dvc-s3). Written to .dvc/config: commit it to share it.
remote: $(STAMP)
	@test -n "$(URL)" || { echo "make remote: set URL, e.g. make remote URL=/mnt/shared/proxyrank-cache" >&2; exit 2; }
	$(DVC) remote add -d -f team "$(URL)"
	@echo "remote 'team' -> $(URL) is the default; dvc push --run-cache shares results, dvc pull --run-cache fetches them"
