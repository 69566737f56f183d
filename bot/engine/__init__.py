"""Room: engine. The pure conversation engine: state and understanding in, a `Decision`
(replies, actions, the next state) out; no I/O, no clock."""
