package jobs

import "stratuslab.dev/platform/resource"

// Kinds are the resource kinds Job and Event, for the cimi
// resource.Provider. Both are read-only through CIMI: nobody creates, edits
// or deletes them; this package alone writes them, and each caller reads
// those its ACL lets it view.
func (j *Jobs) Kinds() []resource.Kind {
	return []resource.Kind{
		{Name: KindJob, Collection: j.jobs, ReadOnly: true},
		{Name: KindEvent, Collection: j.events, ReadOnly: true},
	}
}
