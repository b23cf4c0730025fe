pub fn read_idx(_: &std::path::Path) -> crate::Result<super::Dataset> { todo!() }
