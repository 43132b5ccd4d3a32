// Benchmark peer: Go + gorilla/websocket (Debian's golang-github-gorilla-websocket-dev),
// speaking the tiny hub protocol:
//
//	{"type":"echo","data":D}             -> {"type":"echo","data":D}
//	{"type":"subscribe","room":R}        -> {"type":"subscribed","room":R}
//	{"type":"publish","room":R,"data":D} -> every member of R gets
//	                                        {"type":"message","room":R,"data":D}
//
// One reader goroutine and one writer goroutine per connection; rooms are
// maps under a mutex; a publish is JSON-encoded once and framed once
// (websocket.PreparedMessage), then queued to every member's writer.
//
// Build (GOPATH mode, no module proxy): see build.sh next to this file.
// Usage: go-hub [--port P]   (or PORT=P; 0 picks a free port)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"
)

type inMsg struct {
	Type string      `json:"type"`
	Room string      `json:"room,omitempty"`
	Data interface{} `json:"data,omitempty"`
}

type echoReply struct {
	Type string      `json:"type"`
	Data interface{} `json:"data"`
}

type roomReply struct {
	Type string `json:"type"`
	Room string `json:"room"`
}

type roomMessage struct {
	Type string      `json:"type"`
	Room string      `json:"room"`
	Data interface{} `json:"data"`
}

type errorReply struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

// outItem is either a prepared (framed-once) broadcast or a direct reply.
type outItem struct {
	prepared *websocket.PreparedMessage
	data     []byte
}

type client struct {
	conn  *websocket.Conn
	out   chan outItem
	rooms map[string]struct{} // touched only by the reader goroutine
}

type hub struct {
	mu    sync.RWMutex
	rooms map[string]map[*client]struct{}
}

func (h *hub) join(c *client, room string) {
	h.mu.Lock()
	set := h.rooms[room]
	if set == nil {
		set = make(map[*client]struct{})
		h.rooms[room] = set
	}
	set[c] = struct{}{}
	h.mu.Unlock()
	c.rooms[room] = struct{}{}
}

func (h *hub) leaveAll(c *client) {
	h.mu.Lock()
	for room := range c.rooms {
		if set := h.rooms[room]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(h.rooms, room)
			}
		}
	}
	h.mu.Unlock()
}

// members snapshots a room so the lock is not held while queueing.
func (h *hub) members(room string) []*client {
	h.mu.RLock()
	set := h.rooms[room]
	list := make([]*client, 0, len(set))
	for c := range set {
		list = append(list, c)
	}
	h.mu.RUnlock()
	return list
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(r *http.Request) bool { return true },
}

func (c *client) writer(done chan struct{}) {
	defer c.conn.Close()
	for {
		select {
		case it := <-c.out:
			var err error
			if it.prepared != nil {
				err = c.conn.WritePreparedMessage(it.prepared)
			} else {
				err = c.conn.WriteMessage(websocket.TextMessage, it.data)
			}
			if err != nil {
				return
			}
		case <-done:
			return
		}
	}
}

func (c *client) reply(v interface{}, done chan struct{}) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case c.out <- outItem{data: b}:
	case <-done:
	}
}

func serveWS(h *hub, w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(1 << 20)
	c := &client{conn: conn, out: make(chan outItem, 256), rooms: make(map[string]struct{})}
	done := make(chan struct{})
	go c.writer(done)
	defer func() {
		h.leaveAll(c)
		close(done)
	}()
	for {
		_, payload, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var m inMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			c.reply(errorReply{"error", "invalid json"}, done)
			continue
		}
		switch m.Type {
		case "echo":
			c.reply(echoReply{"echo", m.Data}, done)
		case "subscribe":
			if m.Room == "" {
				c.reply(errorReply{"error", "invalid room"}, done)
				continue
			}
			h.join(c, m.Room)
			c.reply(roomReply{"subscribed", m.Room}, done)
		case "publish":
			if m.Room == "" {
				c.reply(errorReply{"error", "invalid room"}, done)
				continue
			}
			b, err := json.Marshal(roomMessage{"message", m.Room, m.Data})
			if err != nil {
				continue
			}
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
			if err != nil {
				continue
			}
			for _, member := range h.members(m.Room) {
				// Blocking send: a full queue applies backpressure to the
				// publisher instead of losing deliveries.
				member.out <- outItem{prepared: pm}
			}
		default:
			c.reply(errorReply{"error", "unknown type"}, done)
		}
	}
}

func main() {
	port := 8080
	if p := os.Getenv("PORT"); p != "" {
		if v, err := strconv.Atoi(p); err == nil {
			port = v
		}
	}
	flag.IntVar(&port, "port", port, "port to listen on (0: any free port)")
	flag.Parse()

	h := &hub{rooms: make(map[string]map[*client]struct{})}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { serveWS(h, w, r) })

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		ln.Close()
		os.Exit(0)
	}()

	fmt.Printf("listening on ws://127.0.0.1:%d/ (go gorilla/websocket)\n", ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, mux)
}
