mod availability;
mod queries;
mod registration;
mod support;
mod validation;
