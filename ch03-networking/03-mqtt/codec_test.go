package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// marked returns p with the given properties marked present, as a decoder
// marks them.
func marked(p Properties, ids ...PropID) Properties {
	for _, id := range ids {
		p.Mark(id)
	}
	return p
}

// fixture is one packet and its encoding, every byte annotated from the
// specification's figures.
type fixture struct {
	name string
	v    Version
	pkt  Packet
	wire []byte
}

var fixtures = []fixture{
	{"CONNECT 3.1.1", V311, &Connect{Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "dev-1",
		Username: "u", HasUsername: true, Password: []byte("p"), HasPassword: true}, []byte{
		0x10,       // CONNECT, flags 0000
		0x17,       // Remaining Length 23
		0x00, 0x04, // protocol name length 4
		'M', 'Q', 'T', 'T', // protocol name [MQTT-3.1.2-1]
		0x04,       // protocol level 4 = 3.1.1
		0xC2,       // flags: user name 0x80 | password 0x40 | clean session 0x02
		0x00, 0x3C, // keep alive 60 s
		0x00, 0x05, // client identifier length 5
		'd', 'e', 'v', '-', '1', // client identifier
		0x00, 0x01, 'u', // user name "u"
		0x00, 0x01, 'p', // password "p"
	}},
	{"CONNECT 5.0 with will", V5, &Connect{Version: V5, CleanStart: true, KeepAlive: 30,
		Properties: Properties{SessionExpiry: 3600, ReceiveMaximum: 20}, ClientID: "c1",
		Will:     &Will{Properties: Properties{WillDelay: 5}, Topic: "w/t", Payload: []byte("gone"), QoS: 1, Retain: true},
		Username: "u", HasUsername: true}, []byte{
		0x10,                           // CONNECT
		0x2B,                           // Remaining Length 43
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5 = 5.0
		0xAE,       // flags: user name 0x80 | will retain 0x20 | will QoS 1 0x08 | will 0x04 | clean start 0x02
		0x00, 0x1E, // keep alive 30 s
		0x08,                         // property length 8
		0x11, 0x00, 0x00, 0x0E, 0x10, // Session Expiry Interval 3600 s
		0x21, 0x00, 0x14, // Receive Maximum 20
		0x00, 0x02, 'c', '1', // client identifier "c1"
		0x05,                         // will property length 5
		0x18, 0x00, 0x00, 0x00, 0x05, // Will Delay Interval 5 s
		0x00, 0x03, 'w', '/', 't', // will topic "w/t"
		0x00, 0x04, 'g', 'o', 'n', 'e', // will payload "gone" (binary data)
		0x00, 0x01, 'u', // user name "u"; no password flag, no password
	}},
	{"CONNACK 3.1.1 session present", V311, &Connack{SessionPresent: true}, []byte{
		0x20, // CONNACK
		0x02, // Remaining Length 2
		0x01, // acknowledge flags: session present
		0x00, // return code 0: accepted
	}},
	{"CONNACK 3.1.1 not authorized", V311, &Connack{ReasonCode: NotAuthorized}, []byte{
		0x20, // CONNACK
		0x02, // Remaining Length 2
		0x00, // no session
		0x05, // return code 5: not authorized (0x87 in 5.0 terms)
	}},
	{"CONNACK 5.0 with properties", V5, &Connack{Properties: marked(Properties{
		AssignedClientID: "a-1", TopicAliasMaximum: 10}, PropMaximumQoS)}, []byte{
		0x20,                            // CONNACK
		0x0E,                            // Remaining Length 14
		0x00,                            // no session
		0x00,                            // reason code Success
		0x0B,                            // property length 11
		0x12, 0x00, 0x03, 'a', '-', '1', // Assigned Client Identifier "a-1"
		0x22, 0x00, 0x0A, // Topic Alias Maximum 10
		0x24, 0x00, // Maximum QoS 0 (present although zero)
	}},
	{"CONNACK 5.0 bad credentials", V5, &Connack{ReasonCode: BadUserNameOrPassword}, []byte{
		0x20, // CONNACK
		0x03, // Remaining Length 3
		0x00, // no session [MQTT-3.2.2-6]
		0x86, // Bad User Name or Password
		0x00, // property length 0
	}},
	{"PUBLISH 3.1.1 QoS 2 DUP RETAIN", V311, &Publish{Dup: true, QoS: 2, Retain: true, Topic: []byte("t"),
		PacketID: 0x1234, Payload: []byte("x")}, []byte{
		0x3D,            // PUBLISH, flags 1101: DUP, QoS 2, RETAIN
		0x06,            // Remaining Length 6
		0x00, 0x01, 't', // topic "t"
		0x12, 0x34, // packet identifier 0x1234
		'x', // payload
	}},
	{"PUBLISH 5.0 QoS 1", V5, &Publish{QoS: 1, Topic: []byte("a/b"), PacketID: 7,
		Properties: Properties{MessageExpiry: 60, SubscriptionIDs: []uint32{129}, TopicAlias: 5},
		Payload:    []byte(`{"t":21}`)}, publishV5},
	{"PUBLISH 5.0 user property", V5, &Publish{Topic: []byte("a"),
		Properties: Properties{ContentType: "json", User: []UserProperty{{"k", "v"}}}, Payload: []byte("{}")}, []byte{
		0x30,            // PUBLISH QoS 0
		0x14,            // Remaining Length 20
		0x00, 0x01, 'a', // topic "a"; QoS 0: no packet identifier
		0x0E,                                 // property length 14
		0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // Content Type "json"
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // User Property k=v
		'{', '}', // payload
	}},
	{"PUBACK 3.1.1", V311, &PubAck{PacketID: 7}, []byte{
		0x40,       // PUBACK
		0x02,       // Remaining Length 2
		0x00, 0x07, // packet identifier 7
	}},
	{"PUBACK 5.0 success, short form", V5, &PubAck{PacketID: 7}, []byte{
		0x40,       // PUBACK
		0x02,       // Remaining Length 2: reason code and properties left out (3.4.2.1)
		0x00, 0x07, // packet identifier 7
	}},
	{"PUBACK 5.0 with reason string", V5, &PubAck{PacketID: 7, ReasonCode: NoMatchingSubscribers,
		Properties: Properties{ReasonString: "no"}}, []byte{
		0x40,       // PUBACK
		0x09,       // Remaining Length 9
		0x00, 0x07, // packet identifier 7
		0x10,                       // No matching subscribers
		0x05,                       // property length 5
		0x1F, 0x00, 0x02, 'n', 'o', // Reason String "no"
	}},
	{"PUBREC 5.0 reason only", V5, &PubRec{PacketID: 8, ReasonCode: NoMatchingSubscribers}, []byte{
		0x50,       // PUBREC
		0x03,       // Remaining Length 3: no property length
		0x00, 0x08, // packet identifier 8
		0x10, // No matching subscribers
	}},
	{"PUBREL 3.1.1", V311, &PubRel{PacketID: 8}, []byte{
		0x62,       // PUBREL, flags 0010 [MQTT-3.6.1-1]
		0x02,       // Remaining Length 2
		0x00, 0x08, // packet identifier 8
	}},
	{"PUBREL 5.0 not found", V5, &PubRel{PacketID: 8, ReasonCode: PacketIdentifierNotFound}, []byte{
		0x62,       // PUBREL
		0x03,       // Remaining Length 3
		0x00, 0x08, // packet identifier 8
		0x92, // Packet Identifier not found
	}},
	{"PUBCOMP 5.0", V5, &PubComp{PacketID: 8}, []byte{
		0x70,       // PUBCOMP
		0x02,       // Remaining Length 2
		0x00, 0x08, // packet identifier 8
	}},
	{"SUBSCRIBE 3.1.1", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{
		{Filter: "a/+", QoS: 1}, {Filter: "b/#"}}}, []byte{
		0x82,       // SUBSCRIBE, flags 0010 [MQTT-3.8.1-1]
		0x0E,       // Remaining Length 14
		0x00, 0x01, // packet identifier 1
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
		0x01,                      // requested QoS 1
		0x00, 0x03, 'b', '/', '#', // filter "b/#"
		0x00, // requested QoS 0
	}},
	{"SUBSCRIBE 5.0 shared, options", V5, &Subscribe{PacketID: 2, Properties: Properties{SubscriptionIDs: []uint32{5}},
		Subscriptions: []Subscription{{Filter: "$share/g/x", QoS: 2, RetainAsPublished: true, RetainHandling: 2}}}, []byte{
		0x82,       // SUBSCRIBE
		0x12,       // Remaining Length 18
		0x00, 0x02, // packet identifier 2
		0x02,       // property length 2
		0x0B, 0x05, // Subscription Identifier 5
		0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x', // filter "$share/g/x"
		0x2A, // options: retain handling 2 (0x20) | retain as published (0x08) | QoS 2
	}},
	{"SUBACK 3.1.1", V311, &SubAck{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS1, UnspecifiedError}}, []byte{
		0x90,       // SUBACK
		0x04,       // Remaining Length 4
		0x00, 0x01, // packet identifier 1
		0x01, // granted QoS 1
		0x80, // failure
	}},
	{"SUBACK 5.0", V5, &SubAck{PacketID: 2, ReasonCodes: []ReasonCode{GrantedQoS2, WildcardSubscriptionsNotSupported}}, []byte{
		0x90,       // SUBACK
		0x05,       // Remaining Length 5
		0x00, 0x02, // packet identifier 2
		0x00, // property length 0
		0x02, // granted QoS 2
		0xA2, // Wildcard Subscriptions not supported
	}},
	{"UNSUBSCRIBE 3.1.1", V311, &Unsubscribe{PacketID: 3, Filters: []string{"a/+"}}, []byte{
		0xA2,       // UNSUBSCRIBE, flags 0010 [MQTT-3.10.1-1]
		0x07,       // Remaining Length 7
		0x00, 0x03, // packet identifier 3
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
	}},
	{"UNSUBSCRIBE 5.0", V5, &Unsubscribe{PacketID: 3, Filters: []string{"a/+"}}, []byte{
		0xA2,       // UNSUBSCRIBE
		0x08,       // Remaining Length 8
		0x00, 0x03, // packet identifier 3
		0x00,                      // property length 0
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
	}},
	{"UNSUBACK 3.1.1", V311, &UnsubAck{PacketID: 3}, []byte{
		0xB0,       // UNSUBACK
		0x02,       // Remaining Length 2: no payload in 3.1.1
		0x00, 0x03, // packet identifier 3
	}},
	{"UNSUBACK 5.0", V5, &UnsubAck{PacketID: 3, ReasonCodes: []ReasonCode{NoSubscriptionExisted}}, []byte{
		0xB0,       // UNSUBACK
		0x04,       // Remaining Length 4
		0x00, 0x03, // packet identifier 3
		0x00, // property length 0
		0x11, // No subscription existed
	}},
	{"PINGREQ", V311, &PingReq{}, []byte{
		0xC0, // PINGREQ
		0x00, // Remaining Length 0
	}},
	{"PINGRESP", V5, &PingResp{}, []byte{
		0xD0, // PINGRESP
		0x00, // Remaining Length 0
	}},
	{"DISCONNECT 3.1.1", V311, &Disconnect{}, []byte{
		0xE0, // DISCONNECT
		0x00, // Remaining Length 0
	}},
	{"DISCONNECT 5.0 normal, short form", V5, &Disconnect{}, []byte{
		0xE0, // DISCONNECT
		0x00, // Remaining Length 0: Normal disconnection (3.14.2.1)
	}},
	{"DISCONNECT 5.0 session taken over", V5, &Disconnect{ReasonCode: SessionTakenOver}, []byte{
		0xE0, // DISCONNECT
		0x01, // Remaining Length 1
		0x8E, // Session taken over
	}},
	{"DISCONNECT 5.0 with reason string", V5, &Disconnect{Properties: Properties{ReasonString: "bye"}}, []byte{
		0xE0,                            // DISCONNECT
		0x08,                            // Remaining Length 8
		0x00,                            // Normal disconnection
		0x06,                            // property length 6
		0x1F, 0x00, 0x03, 'b', 'y', 'e', // Reason String "bye"
	}},
	{"AUTH 5.0", V5, &Auth{ReasonCode: ContinueAuthentication,
		Properties: Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2}}}, []byte{
		0xF0,                                      // AUTH
		0x0F,                                      // Remaining Length 15
		0x18,                                      // Continue authentication
		0x0D,                                      // property length 13
		0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // Authentication Method "SCRAM"
		0x16, 0x00, 0x02, 0x01, 0x02, // Authentication Data 01 02
	}},
}

func fixtureNamed(t *testing.T, name string) fixture {
	for _, f := range fixtures {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %q", name)
	return fixture{}
}

// clearPresent zeroes the presence bits so that a decoded packet compares
// equal to a literal, and returns a function that puts them back.
func clearPresent(p Packet) (restore func()) {
	var props []*Properties
	switch p := p.(type) {
	case *Connect:
		props = append(props, &p.Properties)
		if p.Will != nil {
			props = append(props, &p.Will.Properties)
		}
	case *Connack:
		props = append(props, &p.Properties)
	case *Publish:
		props = append(props, &p.Properties)
	case *PubAck:
		props = append(props, &p.Properties)
	case *PubRec:
		props = append(props, &p.Properties)
	case *PubRel:
		props = append(props, &p.Properties)
	case *PubComp:
		props = append(props, &p.Properties)
	case *Subscribe:
		props = append(props, &p.Properties)
	case *SubAck:
		props = append(props, &p.Properties)
	case *Unsubscribe:
		props = append(props, &p.Properties)
	case *UnsubAck:
		props = append(props, &p.Properties)
	case *Disconnect:
		props = append(props, &p.Properties)
	case *Auth:
		props = append(props, &p.Properties)
	}
	saved := make([]uint64, len(props))
	for i, pr := range props {
		saved[i] = pr.present
		pr.present = 0
	}
	return func() {
		for i, pr := range props {
			pr.present = saved[i]
		}
	}
}

func TestCodec_Fixtures(t *testing.T) {
	needTasks(t)
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			got, err := f.pkt.AppendTo([]byte{0xAA}, f.v)
			require.NoError(t, err)
			require.Equal(t, append([]byte{0xAA}, f.wire...), got, "encoding (% x)", got)

			p, n, err := Decode(append(bytes.Clone(f.wire), 0xC0, 0x00), f.v, 0) // a PINGREQ follows
			require.NoError(t, err)
			require.Equal(t, len(f.wire), n)
			clearPresent(p)
			want := f.pkt // shared with every later run (-count): put its bits back
			defer clearPresent(want)()
			require.Equal(t, want, p)
		})
	}
}

func TestCodec_Malformed(t *testing.T) {
	needTasks(t)
	cases := []struct {
		name string
		v    Version
		wire []byte
		want *Error
	}{
		{"CONNECT MQTT 3.1", V311, []byte{0x10, 0x0C, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3C}, ErrUnsupportedVersion},
		{"CONNECT level 6", V311, []byte{0x10, 0x0A, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C}, ErrUnsupportedVersion},
		{"CONNECT reserved flag", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT will QoS, no will", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x0A, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT will retain, no will", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x22, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT will QoS 3", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x1E, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT 3.1.1 password, no user", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT no client id", V311, []byte{0x10, 0x0A, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C}, ErrMalformed},
		{"CONNECT trailing byte", V311, []byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00, 0xFF}, ErrMalformed},
		{"CONNECT user flag, no user", V311, []byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x82, 0x00, 0x3C, 0x00, 0x00}, ErrMalformed},
		{"CONNECT will topic wildcard", V311, []byte{0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x3C, 0x00, 0x00, 0x00, 0x01, '#', 0x00, 0x00}, ErrTopicNameInvalid},
		{"CONNECT 5.0 Receive Maximum 0", V5, []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00}, ErrProtocol},
		{"CONNECT 5.0 Topic Alias property", V5, []byte{0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x03, 0x23, 0x00, 0x01, 0x00, 0x00}, ErrMalformed},
		{"CONNECT 5.0 unknown property", V5, []byte{0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x02, 0x05, 0x00, 0x00, 0x00}, ErrMalformed},
		{"CONNECT 5.0 Session Expiry twice", V5, []byte{0x10, 0x17, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3C, 0x0A, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0x00, 0x00}, ErrProtocol},
		{"CONNACK reserved ack flags", V311, []byte{0x20, 0x02, 0x02, 0x00}, ErrMalformed},
		{"CONNACK 3.1.1 return code 6", V311, []byte{0x20, 0x02, 0x00, 0x06}, ErrProtocol},
		{"CONNACK session present with failure", V5, []byte{0x20, 0x03, 0x01, 0x87, 0x00}, ErrProtocol},
		{"CONNACK 5.0 PUBACK-only code", V5, []byte{0x20, 0x03, 0x00, 0x10, 0x00}, ErrProtocol},
		{"PUBACK 3.1.1 extra byte", V311, []byte{0x40, 0x03, 0x00, 0x01, 0x00}, ErrMalformed},
		{"PUBACK packet id 0", V311, []byte{0x40, 0x02, 0x00, 0x00}, ErrProtocol},
		{"PUBACK 5.0 reason 0x01", V5, []byte{0x40, 0x03, 0x00, 0x01, 0x01}, ErrProtocol},
		{"PUBCOMP cut short", V5, []byte{0x70, 0x01, 0x00}, ErrMalformed},
		{"SUBSCRIBE no filters", V311, []byte{0x82, 0x02, 0x00, 0x01}, ErrProtocol},
		{"SUBSCRIBE 3.1.1 reserved option bits", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}, ErrMalformed},
		{"SUBSCRIBE 5.0 reserved option bits", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40}, ErrMalformed},
		{"SUBSCRIBE 5.0 QoS 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03}, ErrProtocol},
		{"SUBSCRIBE 3.1.1 QoS 3", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}, ErrMalformed},
		{"SUBSCRIBE retain handling 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30}, ErrProtocol},
		{"SUBSCRIBE No Local on $share", V5, []byte{0x82, 0x0F, 0x00, 0x01, 0x00, 0x00, 0x09, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 0x04}, ErrProtocol},
		{"SUBSCRIBE filter, no options", V311, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}, ErrMalformed},
		{"SUBSCRIBE two Subscription Identifiers", V5, []byte{0x82, 0x0A, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 'a', 0x00}, ErrProtocol},
		{"SUBACK 3.1.1 code 0x03", V311, []byte{0x90, 0x03, 0x00, 0x01, 0x03}, ErrProtocol},
		{"SUBACK no codes", V5, []byte{0x90, 0x03, 0x00, 0x01, 0x00}, ErrProtocol},
		{"UNSUBSCRIBE no filters", V5, []byte{0xA2, 0x03, 0x00, 0x01, 0x00}, ErrProtocol},
		{"UNSUBSCRIBE empty filter", V311, []byte{0xA2, 0x04, 0x00, 0x01, 0x00, 0x00}, ErrProtocol},
		{"UNSUBACK 3.1.1 with payload", V311, []byte{0xB0, 0x03, 0x00, 0x01, 0x00}, ErrMalformed},
		{"PINGREQ with a body", V311, []byte{0xC0, 0x01, 0x00}, ErrMalformed},
		{"DISCONNECT 3.1.1 with a body", V311, []byte{0xE0, 0x01, 0x00}, ErrMalformed},
		{"DISCONNECT 5.0 PUBREL-only code", V5, []byte{0xE0, 0x01, 0x92}, ErrProtocol},
		{"AUTH in 3.1.1", V311, []byte{0xF0, 0x00}, ErrMalformed},
		{"AUTH 5.0 code 0x80", V5, []byte{0xF0, 0x01, 0x80}, ErrProtocol},
		{"AUTH 5.0 Reason String in PUBLISH-only slot", V5, []byte{0xF0, 0x04, 0x18, 0x02, 0x01, 0x00}, ErrMalformed},
		{"reserved type 0", V5, []byte{0x00, 0x00}, ErrMalformed},
	}
	for _, c := range cases {
		_, _, err := Decode(c.wire, c.v, 0)
		requireCode(t, err, c.want, c.name)
	}

	_, _, err := Decode([]byte{0x30, 0x05, 0x00, 0x01, 'a'}, V311, 0) // body cut short
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _, err = Decode([]byte{0x30}, V311, 0) // fixed header cut short
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _, err = Decode([]byte{0x30, 0x80}, V311, 0) // remaining length cut short
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestCodec_EncodeValidates(t *testing.T) {
	needTasks(t)
	long := strings.Repeat("x", MaxStringLen+1)
	cases := []struct {
		name string
		v    Version
		pkt  Packet
		want *Error
	}{
		{"version 3", 3, &PingReq{}, ErrUnsupportedVersion},
		{"PUBLISH QoS 1 without id", V311, &Publish{QoS: 1, Topic: []byte("a")}, ErrProtocol},
		{"PUBLISH QoS 3", V311, &Publish{QoS: 3, PacketID: 1, Topic: []byte("a")}, ErrMalformed},
		{"PUBLISH wildcard", V5, &Publish{Topic: []byte("a/#")}, ErrTopicNameInvalid},
		{"PUBLISH empty topic, no alias", V5, &Publish{}, ErrProtocol},
		{"PUBLISH NUL in topic", V311, &Publish{Topic: []byte("a\x00")}, ErrMalformed},
		{"PUBLISH topic too long", V311, &Publish{Topic: []byte(long)}, ErrPacketTooLarge},
		{"CONNECT client id too long", V311, &Connect{ClientID: long}, ErrPacketTooLarge},
		{"CONNECT 3.1.1 password without user", V311, &Connect{HasPassword: true}, ErrProtocol},
		{"CONNACK session present, failure", V5, &Connack{SessionPresent: true, ReasonCode: ServerBusy}, ErrProtocol},
		{"PUBACK id 0", V5, &PubAck{}, ErrProtocol},
		{"PUBREL wrong code", V5, &PubRel{PacketID: 1, ReasonCode: NotAuthorized}, ErrProtocol},
		{"SUBSCRIBE empty", V5, &Subscribe{PacketID: 1}, ErrProtocol},
		{"SUBACK 3.1.1 0x87", V311, &SubAck{PacketID: 1, ReasonCodes: []ReasonCode{NotAuthorized}}, ErrProtocol},
		{"UNSUBSCRIBE empty", V311, &Unsubscribe{PacketID: 1}, ErrProtocol},
		{"AUTH in 3.1.1", V311, &Auth{}, ErrMalformed},
		{"CONNECT property in PUBLISH", V5, &Publish{Topic: []byte("a"), Properties: Properties{SessionExpiry: 1}}, ErrMalformed},
		{"Maximum QoS 2", V5, &Connack{Properties: Properties{MaximumQoS: 2}}, ErrProtocol},
	}
	for _, c := range cases {
		dst := []byte{1, 2, 3}
		got, err := c.pkt.AppendTo(dst, c.v)
		requireCode(t, err, c.want, c.name)
		require.Equal(t, []byte{1, 2, 3}, got, "%s: dst must come back unchanged", c.name)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReader_MaxPacketSize(t *testing.T) {
	needTasks(t)
	// A PUBLISH that claims 2 MiB, followed by the first 64 KiB of it.
	wire := []byte{0x30, 0x80, 0x80, 0x80, 0x01} // PUBLISH, Remaining Length 2,097,152
	wire = append(wire, make([]byte, 64<<10)...)
	src := &countingReader{r: bytes.NewReader(wire)}
	r := NewReader(src, Config{MaxPacketSize: 1024, BufferSize: 16})
	_, _, err := r.Next()
	requireCode(t, err, ErrPacketTooLarge)
	assert.Equal(t, PacketTooLarge, CodeOf(err))
	assert.LessOrEqual(t, src.n, 16, "the reader must stop at the fixed header, not read the body")
	assert.Zero(t, cap(r.buf), "no body buffer may be allocated for a refused packet")

	// Exactly at the limit is allowed: 2 + 1022 = 1024 bytes.
	ok := append([]byte{0x30, 0xFE, 0x07, 0x00, 0x01, 'a'}, make([]byte, 1019)...) // 1022 = 0x7FE
	r = NewReader(bytes.NewReader(ok), Config{MaxPacketSize: 1025})
	p, err := r.ReadPacket()
	require.ErrorIs(t, err, ErrProtocol, "version unset: the first packet must be CONNECT")
	require.Nil(t, p)
	r = NewReader(bytes.NewReader(ok), Config{MaxPacketSize: 1025, Version: V311})
	p, err = r.ReadPacket()
	require.NoError(t, err)
	require.Len(t, p.(*Publish).Payload, 1019)
	r = NewReader(bytes.NewReader(ok), Config{MaxPacketSize: 1024, Version: V311})
	_, err = r.ReadPacket()
	requireCode(t, err, ErrPacketTooLarge)
}

func TestReader_Stream(t *testing.T) {
	needTasks(t)
	var stream []byte
	for _, name := range []string{"CONNECT 5.0 with will", "CONNACK 5.0 with properties",
		"CONNACK 5.0 bad credentials", "PUBLISH 5.0 QoS 1", "PINGREQ"} {
		stream = append(stream, fixtureNamed(t, name).wire...)
	}
	r := NewReader(bytes.NewReader(stream), Config{})
	want := []PacketType{CONNECT, CONNACK, CONNACK, PUBLISH, PINGREQ}
	for _, w := range want {
		p, err := r.ReadPacket()
		require.NoError(t, err)
		require.Equal(t, w, p.Type())
	}
	require.Equal(t, V5, r.Version(), "the reader adopts the CONNECT's version")
	_, err := r.ReadPacket()
	require.ErrorIs(t, err, io.EOF, "a clean end between packets is io.EOF")

	r = NewReader(bytes.NewReader(fixtures[0].wire[:10]), Config{})
	_, err = r.ReadPacket()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "an end inside a packet is io.ErrUnexpectedEOF")
	require.False(t, errors.Is(err, io.EOF))

	r = NewReader(bytes.NewReader([]byte{0x30}), Config{Version: V5})
	_, err = r.ReadPacket()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)

	// A bufio.Reader is used as it is, not wrapped again.
	br := bufio.NewReader(bytes.NewReader(nil))
	require.Same(t, br, NewReader(br, Config{}).br)
}

// loopReader serves the same bytes forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func TestReader_PublishZeroAlloc(t *testing.T) {
	needTasks(t)
	r := NewReader(&loopReader{b: publishV5}, Config{Version: V5})
	var p Publish
	var failed error
	allocs := testing.AllocsPerRun(200, func() {
		h, body, err := r.Next()
		if err == nil {
			err = p.Decode(h, body, r.Version())
		}
		if err != nil {
			failed = err
		}
	})
	require.NoError(t, failed)
	require.Equal(t, `{"t":21}`, string(p.Payload))
	require.Zero(t, allocs, "reading and decoding a PUBLISH from a stream allocated %.1f times per packet", allocs)

	// Encoding into a reused buffer does not allocate either.
	buf := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(200, func() {
		var err error
		if buf, err = p.AppendTo(buf[:0], V5); err != nil {
			failed = err
		}
	})
	require.NoError(t, failed)
	require.Equal(t, publishV5, buf)
	require.Zero(t, allocs, "encoding a PUBLISH into a reused buffer allocated %.1f times", allocs)

	// Nor do the acknowledgements a broker sends for every QoS 1/2 message,
	// nor SUBACK and DISCONNECT.
	for _, v := range []Version{V311, V5} {
		for _, pk := range []interface {
			AppendTo([]byte, Version) ([]byte, error)
		}{&PubAck{PacketID: 7}, &PubRec{PacketID: 7}, &PubRel{PacketID: 7}, &PubComp{PacketID: 7},
			&SubAck{PacketID: 7, ReasonCodes: []ReasonCode{GrantedQoS1}}, &Disconnect{}} {
			allocs = testing.AllocsPerRun(200, func() {
				var err error
				if buf, err = pk.AppendTo(buf[:0], v); err != nil {
					failed = err
				}
			})
			require.NoError(t, failed, "%T %v", pk, v)
			require.Zero(t, allocs, "encoding a %T (%v) into a reused buffer allocated %.1f times", pk, v, allocs)
		}
	}
}

func TestErrors(t *testing.T) {
	assert.Equal(t, Success, CodeOf(nil))
	assert.Equal(t, UnspecifiedError, CodeOf(io.EOF))
	assert.Equal(t, MalformedPacket, CodeOf(ErrMalformed))
	assert.Equal(t, ProtocolError, CodeOf(ErrProtocol))
	assert.Equal(t, PacketTooLarge, CodeOf(ErrPacketTooLarge))
	assert.Equal(t, "Packet too large", PacketTooLarge.String())
	assert.Equal(t, "reason code 0x03", ReasonCode(3).String())
	assert.True(t, MalformedPacket.IsError())
	assert.False(t, GrantedQoS2.IsError())
	for code, want := range map[ReasonCode]byte{Success: 0, UnsupportedProtocolVersion: 1,
		ClientIdentifierNotValid: 2, ServerUnavailable: 3, BadUserNameOrPassword: 4,
		NotAuthorized: 5, Banned: 5, ServerBusy: 3, QuotaExceeded: 3} {
		assert.Equal(t, want, ReturnCodeV311(code), code.String())
	}
	assert.Equal(t, "PUBLISH", PUBLISH.String())
	assert.Equal(t, "5.0", V5.String())
	assert.Equal(t, "unknown(3)", Version(3).String())
}

func TestPublish_Clone(t *testing.T) {
	needTasks(t)
	var p Publish
	require.NoError(t, p.Decode(FixedHeader{PUBLISH, 0x2, uint32(len(publishV5) - 2)}, publishV5[2:], V5))
	p.Properties.User = []UserProperty{{"k", "v"}}
	c := p.Clone()
	require.Equal(t, &p, c)
	p.Topic[0], p.Payload[0], p.Properties.SubscriptionIDs[0], p.Properties.User[0].Key = 'X', 'X', 1, "X"
	require.Equal(t, "a/b", string(c.Topic), "the clone must not share the topic")
	require.Equal(t, `{"t":21}`, string(c.Payload))
	require.Equal(t, []uint32{129}, c.Properties.SubscriptionIDs)
	require.Equal(t, "k", c.Properties.User[0].Key)
}

func TestParseHeader(t *testing.T) {
	needTasks(t)
	// What an event loop sees as bytes arrive: need more, need more, a header.
	_, _, err := ParseHeader(nil, 0)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, _, err = ParseHeader([]byte{0x30, 0x80}, 0) // length continues
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	h, n, err := ParseHeader([]byte{0x30, 0x80, 0x01, 0x00}, 0) // 128-byte PUBLISH, body not here yet
	require.NoError(t, err)
	require.Equal(t, FixedHeader{PUBLISH, 0, 128}, h)
	require.Equal(t, 3, n)
	// Too large is known from the header alone, before the body arrives.
	_, _, err = ParseHeader([]byte{0x30, 0x80, 0x01}, 100)
	requireCode(t, err, ErrPacketTooLarge)
	_, _, err = ParseHeader([]byte{0x36, 0x00}, 0)
	requireCode(t, err, ErrMalformed)
}
