"""Remote attempts on RQ workers through Redis: the daemon's executor and `aiwg worker`."""
