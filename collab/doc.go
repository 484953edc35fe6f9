// Package collab holds the one Method interface every collaboration method
// implements, whatever its level (API, text, logit, weight, training), and
// the registry the CLI, the sweep and the server build methods from. It also
// holds the methods that orchestrate whole models rather than single tokens:
// routing, voting, debate and the like. It builds on decode, merge and train.
//
// A Method is a Generator over a pool of Members; a Generator answers
// batches of Requests. Register adds a method under its name; New builds one
// over a pool with parameters checked strictly (an unknown key is an error).
package collab
