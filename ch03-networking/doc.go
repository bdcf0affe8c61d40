// Package networking is chapter 3 of the Floodgate workbook: TCP at scale, epoll, the MQTT codec, topic trees, a small broker, WebSocket, auth and TLS.
//
// The chapter's labs live in the numbered folders beside this file, one
// package per lab; see README.md for the map.
package networking
