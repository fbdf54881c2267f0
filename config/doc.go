// Package config loads and validates multihome's YAML configuration.
//
// One file describes the links, their probes and health thresholds, and one
// section per subsystem. Decoding is strict and position-aware: an unknown
// field, a bad duration, rate or address, a duplicate name or a reference
// to a missing link is reported as "file:line:column: field.path: reason",
// and every error in the file is reported at once. A Config returned
// without error has every default filled in, so subsystems never guess.
//
// Subsystems add their own section in a file of this package and register
// its defaults and validation in sectionChecks.
package config
