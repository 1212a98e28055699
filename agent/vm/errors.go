package vm

import (
	"errors"
	"fmt"
)

// Error codes of a failed build, for the VM's UNRESOURCED error_code.
const (
	CodeBadSpec       = "vm_bad_spec"
	CodeImageMissing  = "vm_image_missing"
	CodeImageChecksum = "vm_image_checksum"
	CodePoolFull      = "vm_pool_full"
	CodeLibvirt       = "vm_libvirt"
	// CodeBackupDir: the backup directory cannot be made or written (not
	// a directory, read-only, no permission). Retrying does not help.
	CodeBackupDir = "vm_backup_dir"
	// CodeBackupMissing: a restore's backup copy (its directory, manifest
	// or a disk file) is gone.
	CodeBackupMissing = "vm_backup_missing"
	// CodeRestoreRefused: the backup does not fit the VM as it is now (a
	// disk it no longer has, a backing image that is gone, a snapshot taken
	// after the backup). Nothing was changed.
	CodeRestoreRefused = "vm_restore_refused"
)

// Error is a build failure the controller should see: Code goes to the
// VM's error_code and Error() to its error_detail.
type Error struct {
	Code string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Code, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func newError(code string, format string, args ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// ErrorCode is the code of err for the VM's error_code: the Code of an
// *Error in its chain, CodeLibvirt otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeLibvirt
}

// lv wraps a libvirt failure of an operation.
func lv(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: CodeLibvirt, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)}
}
