pub fn read_csv(_: &std::path::Path) -> crate::Result<super::Dataset> { todo!() }
