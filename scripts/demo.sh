#!/usr/bin/env bash
# Palisade's main job on the bundled reference system: validate its
# manifests the way istiod and the API server would, then decide a few
# requests and explain each verdict. Usage: demo.sh PALISADE EXAMPLE_DIR
set -u
bin=${1:-bin/palisade}
dir=${2:-examples/reference-system}

run() {
	echo
	echo "\$ palisade $*"
	"$bin" "$@"
	echo "(exit status $?)"
}

echo "== What istiod and the API server would reject in the reference system"
run validate -f "$dir"

echo
echo "== The frontend calls the backend API with a bearer token: frontend-to-backend allows it"
run check -f "$dir" --from production/frontend --to production/backend-api \
	--method GET --path /api/v1/users --header 'Authorization: Bearer demo'

echo
echo "== The same request without the token: no ALLOW rule matches"
run check -f "$dir" --from production/frontend --to production/backend-api \
	--method GET --path /api/v1/users

echo
echo "== A path-normalization trick does not get past the policy"
run check -f "$dir" --from production/frontend --to production/backend-api \
	--method GET --path '/api/v1/%2e%2e/%2e%2e/admin' --header 'Authorization: Bearer demo'

echo
echo "== The backend reaches PostgreSQL: the policy meant to allow it is rejected by istiod"
run check -f "$dir" --from production/backend-api --to production/postgres

echo
echo "== A client without a sidecar is refused by STRICT mTLS"
run check -f "$dir" --from production/frontend --to production/backend-api --plaintext

echo
echo "== The admin console, from inside 10.0.0.0/8, with its admin token"
run check -f "$dir" --from production/admin-console --to production/payment-service \
	--method DELETE --path /v1/payments/7 --header 'x-admin-token: admin-ops'
