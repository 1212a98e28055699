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
