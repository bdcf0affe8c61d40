// Package capstone is the Floodgate broker: an MQTT 3.1.1 and 5.0 broker
// assembled from the parts built in the chapters' labs.
//
// It is being written; see README.md.
package capstone
