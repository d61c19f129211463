#!/usr/bin/env bash
# The README's Kubernetes quick start, exactly as tests/e2e/test_quickstart.py runs it against the
# emulated cluster. Needs: kubectl with a context on the cluster; HF_TOKEN, a Hugging Face token with
# access to black-forest-labs/FLUX.1-Fill-dev; AUDIT, the audit to run (default: the baseline example,
# whose spec.input.userId you set first). Prints the report's link when the audit is Ready.
set -euo pipefail
AUDIT=${AUDIT:-manifests/examples/audit.yaml}
kubectl apply -k manifests/    # or: helm install fluxaudit charts/fluxaudit -n fluxaudit-system --create-namespace
kubectl apply -f manifests/examples/runner-namespace.yaml    # the audits namespace and the runner's ServiceAccount
kubectl -n audits create secret generic fluxaudit-hf-token --from-literal=token="$HF_TOKEN" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n audits apply -f "$AUDIT"
NAME=$(kubectl -n audits get -f "$AUDIT" -o jsonpath='{.metadata.name}')
kubectl -n audits wait "fluxaudit/$NAME" --for=condition=Ready --timeout=3h
kubectl -n audits get "fluxaudit/$NAME" -o jsonpath='{.status.reportURL}{"\n"}'    # report.html, signed
