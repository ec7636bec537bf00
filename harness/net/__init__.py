"""The measuring transport: sockets read with kernel receive timestamps, websockets and reconnects on top."""
