package rig

// Pid is the process's id, for what only the operating system tells about it (its resident
// memory in /proc/<pid>/status, for the footprint benchmark).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }
