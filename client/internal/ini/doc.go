// Package ini reads and writes the INI files of the StratusLab client
// configuration (stratuslab-user.cfg): [section] headers, key = value (or
// key: value) lines, whole-line comments starting with # or ;, values
// optionally in double quotes, and %% standing for % as in the Python
// client's files. Keys are case-insensitive; the last of duplicate keys
// wins and a repeated section continues the first one.
package ini
