// Package examples embeds the bundled examples, so that `palisade demo`
// runs from the binary alone.
package examples

import "embed"

// FS holds the corrected reference system and the demo's traffic.
//
//go:embed reference-system-fixed traffic
var FS embed.FS
