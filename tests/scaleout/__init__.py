"""Scale-out with real parts: Socket.IO nodes on a real Redis behind a real nginx, a real Locust run."""
