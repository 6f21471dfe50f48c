//! `--format junit`: JUnit XML for CI runners — one test suite per fixture
//! file, one test case per case, a failure's detail as its message.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use ce_parity::runner::Status;

use super::check::FileReport;

pub fn print(files: &[FileReport], elapsed: std::time::Duration) -> anyhow::Result<()> {
    let mut report = Report::new("ce-parity check");
    report.set_time(elapsed);
    for file in files {
        let mut suite = TestSuite::new(file.file.as_str());
        for case in &file.cases {
            let status = match case.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(case.note.as_str());
                    status
                }
                Status::Skipped => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(case.note.as_str());
                    status
                }
            };
            suite.add_test_case(TestCase::new(case.name.as_str(), status));
        }
        report.add_test_suite(suite);
    }
    outln!("{}", report.to_string()?)?;
    Ok(())
}
