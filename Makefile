# Two commands do all the set-up on a fresh Debian or Raspberry Pi OS machine:
#   make run    system packages (where we have the rights), .venv, the package; then listen
#   make test   the same set-up plus the test tools; then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test setup setup-test system-deps system-deps-test model bench clean

run: system-deps $(STAMP)
	$(BIN)/voice-skill run $(ARGS)

test: system-deps-test $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh run

system-deps-test:
	@bash scripts/install-system-deps.sh test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

model: $(STAMP)
	$(BIN)/voice-skill models download $(MODEL)

bench: system-deps-test $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
