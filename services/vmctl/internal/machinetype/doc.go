// Package machinetype is the table of machine types users pick with
// `run-instance -t`: how many CPUs, how much memory and swap a machine of
// each type gets, the standard StratusLab types an installation starts
// with, and the rules that apply a user's --cpu, --ram and --swap overrides
// on top of a type. Where the table is stored (the MachineConfiguration
// collection administrators edit) is the caller's concern: everything here
// works on a plain []Type.
package machinetype
