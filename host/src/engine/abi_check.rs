//! Refuse a module that does not speak ABI v1, saying exactly why.

use nfvhost_abi::{IMPORT_MODULE, OPTIONAL_EXPORTS, PROVIDED_IMPORTS, REQUIRED_EXPORTS};
use wasmtime::{ExternType, FuncType, ValType};

/// Why a module was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AbiError {
    #[error(
        "module does not export `{name}` ({sig}); is it built with vnf-sdk's export_vnf! macro?"
    )]
    MissingExport {
        name: &'static str,
        sig: &'static str,
    },
    #[error("export `{name}` has type {found}, the ABI requires {expected}")]
    ExportType {
        name: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("module imports `{module}.{name}`, which nfvhost does not provide (nfvhost provides {provided})")]
    UnknownImport {
        module: String,
        name: String,
        provided: String,
    },
    #[error("import `{module}.{name}` has type {found}, nfvhost provides {expected}")]
    ImportType {
        module: String,
        name: String,
        expected: &'static str,
        found: String,
    },
    #[error("module was built for nfvhost ABI version {found}; this nfvhost speaks version {expected}; rebuild it against a matching vnf-sdk")]
    Version { found: i32, expected: u32 },
}

/// Formats a function type the way `nfvhost_abi` writes signatures:
/// `func(i32, i32) -> i32`.
pub(crate) fn signature(ty: &FuncType) -> String {
    let name = |v: ValType| match v {
        ValType::I32 => "i32".to_string(),
        ValType::I64 => "i64".to_string(),
        ValType::F32 => "f32".to_string(),
        ValType::F64 => "f64".to_string(),
        other => other.to_string(),
    };
    let params: Vec<String> = ty.params().map(name).collect();
    let results: Vec<String> = ty.results().map(name).collect();
    match results.len() {
        0 => format!("func({})", params.join(", ")),
        1 => format!("func({}) -> {}", params.join(", "), results[0]),
        _ => format!("func({}) -> ({})", params.join(", "), results.join(", ")),
    }
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => signature(f),
        ExternType::Memory(_) => "memory".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// Checks the module's imports and exports against ABI v1. The version
/// itself is checked after instantiation by calling `nfv_abi_version`.
pub fn check_module(module: &wasmtime::Module) -> Result<(), AbiError> {
    for import in module.imports() {
        let found = describe(&import.ty());
        let provided = PROVIDED_IMPORTS
            .iter()
            .find(|(n, _)| import.module() == IMPORT_MODULE && *n == import.name());
        match provided {
            None => {
                let list: Vec<String> = PROVIDED_IMPORTS
                    .iter()
                    .map(|(n, _)| format!("{IMPORT_MODULE}.{n}"))
                    .collect();
                return Err(AbiError::UnknownImport {
                    module: import.module().into(),
                    name: import.name().into(),
                    provided: list.join(", "),
                });
            }
            Some((_, expected)) if *expected != found => {
                return Err(AbiError::ImportType {
                    module: import.module().into(),
                    name: import.name().into(),
                    expected,
                    found,
                })
            }
            Some(_) => {}
        }
    }
    let required = REQUIRED_EXPORTS.iter().map(|e| (e, true));
    let optional = OPTIONAL_EXPORTS.iter().map(|e| (e, false));
    for ((name, sig), required) in required.chain(optional) {
        match module.get_export(name) {
            None if required => return Err(AbiError::MissingExport { name, sig }),
            None => {}
            Some(export) => {
                let found = describe(&export);
                if found != *sig {
                    return Err(AbiError::ExportType {
                        name,
                        expected: sig,
                        found,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether the module exports both state-handover functions (feature
/// `state`); [`check_module`] has checked their types.
pub fn has_state_exports(module: &wasmtime::Module) -> bool {
    [
        nfvhost_abi::EXPORT_STATE_SAVE,
        nfvhost_abi::EXPORT_STATE_LOAD,
    ]
    .iter()
    .all(|name| module.get_export(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(wat: &str) -> wasmtime::Module {
        wasmtime::Module::new(&wasmtime::Engine::default(), wat).unwrap()
    }

    const GOOD_EXPORTS: &str = r#"
        (memory (export "memory") 1)
        (func (export "nfv_abi_version") (result i32) i32.const 1)
        (func (export "nfv_alloc") (param i32) (result i32) i32.const 0)
        (func (export "nfv_init") (param i32 i32) (result i32) i32.const 0)
        (func (export "nfv_process") (param i32 i32) (result i32) i32.const 0)
        (func (export "nfv_tick") (param i64))
    "#;

    #[test]
    fn optional_state_exports_are_checked_when_present() {
        let good = module(&format!(
            r#"(module {GOOD_EXPORTS}
                (func (export "nfv_state_save") (param i32) (result i32) i32.const 1)
                (func (export "nfv_state_load") (param i32 i32 i32) (result i32) i32.const 0))"#
        ));
        assert_eq!(check_module(&good), Ok(()));
        assert!(has_state_exports(&good));
        let without = module(&format!("(module {GOOD_EXPORTS})"));
        assert!(!has_state_exports(&without));
        let bad = module(&format!(
            r#"(module {GOOD_EXPORTS} (func (export "nfv_state_load") (param i32) (result i32) i32.const 0))"#
        ));
        assert!(matches!(
            check_module(&bad),
            Err(AbiError::ExportType {
                name: "nfv_state_load",
                ..
            })
        ));
    }

    #[test]
    fn accepts_a_complete_module() {
        let m = module(&format!(
            r#"(module (import "nfv" "now_ns" (func (result i64))) {GOOD_EXPORTS})"#
        ));
        assert_eq!(check_module(&m), Ok(()));
    }

    #[test]
    fn names_a_missing_export() {
        let m = module(r#"(module (memory (export "memory") 1))"#);
        let err = check_module(&m).unwrap_err();
        assert_eq!(
            err,
            AbiError::MissingExport {
                name: "nfv_abi_version",
                sig: "func() -> i32"
            }
        );
        assert!(err
            .to_string()
            .contains("does not export `nfv_abi_version`"));
    }

    #[test]
    fn names_an_unknown_import() {
        let m = module(&format!(
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) {GOOD_EXPORTS})"#
        ));
        let err = check_module(&m).unwrap_err().to_string();
        assert!(err.contains("`wasi_snapshot_preview1.fd_write`"), "{err}");
        assert!(err.contains("nfv.emit"), "{err}");
    }

    #[test]
    fn names_a_mistyped_import() {
        let m = module(&format!(
            r#"(module (import "nfv" "emit" (func (param i32 i32) (result i32))) {GOOD_EXPORTS})"#
        ));
        let err = check_module(&m).unwrap_err();
        assert_eq!(
            err,
            AbiError::ImportType {
                module: "nfv".into(),
                name: "emit".into(),
                expected: "func(i32, i32, i32) -> i32",
                found: "func(i32, i32) -> i32".into()
            }
        );
    }

    #[test]
    fn names_a_mistyped_export() {
        let exports = GOOD_EXPORTS.replace(
            r#"(func (export "nfv_tick") (param i64))"#,
            r#"(func (export "nfv_tick") (param i32))"#,
        );
        let err = check_module(&module(&format!("(module {exports})"))).unwrap_err();
        assert_eq!(
            err,
            AbiError::ExportType {
                name: "nfv_tick",
                expected: "func(i64)",
                found: "func(i32)".into()
            }
        );
    }

    #[test]
    fn checks_the_optional_timer_export_only_when_present() {
        assert_eq!(
            check_module(&module(&format!("(module {GOOD_EXPORTS})"))),
            Ok(())
        );
        let with_timer = format!(
            r#"(module (import "nfv" "timer_at" (func (param i64))) {GOOD_EXPORTS} (func (export "nfv_timer") (param i64)))"#
        );
        assert_eq!(check_module(&module(&with_timer)), Ok(()));
        let mistyped = format!(r#"(module {GOOD_EXPORTS} (func (export "nfv_timer")))"#);
        assert_eq!(
            check_module(&module(&mistyped)).unwrap_err(),
            AbiError::ExportType {
                name: "nfv_timer",
                expected: "func(i64)",
                found: "func()".into()
            }
        );
    }
}
