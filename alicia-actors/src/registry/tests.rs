mod availability;
mod bus;
mod queries;
mod registration;
mod support;
mod validation;
