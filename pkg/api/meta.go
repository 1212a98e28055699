package api

// Meta is carried by every stored object: its id, timestamps (RFC 3339, UTC,
// stamped by the leader) and the raft indexes that created and last modified it.
type Meta struct {
	ID            uint64 `json:"id"`
	Created       string `json:"created"`
	Updated       string `json:"updated"`
	CreatedIndex  uint64 `json:"created_index"`
	ModifiedIndex uint64 `json:"modified_index"`
}

// GetMeta lets generic code reach the Meta of any object embedding it.
func (m *Meta) GetMeta() *Meta { return m }

// Object is any stored resource.
type Object interface {
	GetMeta() *Meta
}

// Modified is embedded by the objects whose CloudCIX serializer has
// modified_by: the id of the user who last created or changed the object.
// The state store stamps it on every create and replace from the command
// that does the write (the user of the caller's token, robot tokens
// included), never from a request body; it is null when that command has no
// user (the region's own work, such as leader duties). Writes that do not
// move modified_index (a zone's serial, a block's allocation engine) leave
// it as it is.
type Modified struct {
	ModifiedBy *uint64 `json:"modified_by"`
}

// SetModifiedBy records user (0: no user, null) as the last writer.
func (m *Modified) SetModifiedBy(user uint64) {
	if user == 0 {
		m.ModifiedBy = nil
		return
	}
	m.ModifiedBy = &user
}

// ModifiedByer is an object that records its last writer (embeds Modified).
type ModifiedByer interface {
	SetModifiedBy(user uint64)
}

// ListMetadata is the "_metadata" member of a CloudCIX list response.
type ListMetadata struct {
	Page         int      `json:"page"`
	Limit        int      `json:"limit"`
	Order        string   `json:"order"`
	TotalRecords int      `json:"total_records"`
	Warnings     []string `json:"warnings"`
}

// List is the CloudCIX list envelope.
type List[T any] struct {
	Content  []T          `json:"content"`
	Metadata ListMetadata `json:"_metadata"`
}

// Item is the CloudCIX single-object envelope.
type Item[T any] struct {
	Content T `json:"content"`
}
