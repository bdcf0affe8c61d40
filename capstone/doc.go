// Package capstone is the Floodgate broker: an MQTT 3.1.1 and 5.0 broker
// assembled from the parts built in the chapters' labs.
//
// The stages are packages: listeners, admission, engine, session, router,
// queue, and broker, which wires them (see broker.New and Broker.Run);
// cmd/floodgate is the program. README.md explains the architecture and
// which lab each stage comes from.
package capstone
