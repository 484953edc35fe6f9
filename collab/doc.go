// Package collab holds collaboration methods that orchestrate whole models
// rather than single tokens: routing, voting, debate and the like. It builds
// on decode and merge.
package collab
