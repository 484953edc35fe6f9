// Package yamlerr turns the errors of go.yaml.in/yaml/v3's strict decoding
// into messages for the people who wrote the file: no Go type names, an
// unknown key said as such, YAML's kinds in words, one line. The sweep,
// merge and serve configs all decode through it.
package yamlerr
